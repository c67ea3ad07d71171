"""A small stdlib client for the `/_emulator/` admin endpoints (tests, demo, other processes)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from halfrate_emulator.options import FaultConfig


class EmulatorAdmin:
    """Calls the admin endpoints of an emulator at `base_url`."""

    def __init__(
        self, base_url: str, admin_token: str | None = None, timeout: float = 30.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.admin_token = admin_token
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("content-type", "application/json")
        if self.admin_token is not None:
            request.add_header("x-emulator-admin-token", self.admin_token)
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return json.loads(response.read())

    def health(self) -> dict[str, Any]:
        """`GET /_emulator/health`."""
        return dict(self._call("GET", "/_emulator/health"))

    def reset(self) -> None:
        """Forget every batch, audit row and cache entry."""
        self._call("POST", "/_emulator/reset", {})

    def audit(self, custom_ids: bool = False) -> list[dict[str, Any]]:
        """Every committed create, oldest first (with its custom_ids if asked)."""
        query = "?custom_ids=true" if custom_ids else ""
        return list(self._call("GET", "/_emulator/audit" + query)["creates"])

    def messages(self) -> list[dict[str, Any]]:
        """Every answered (paid) Messages call, oldest first: digest (`message_digest` of its
        body), model, input_tokens, output_tokens, created_at, held (its answer was stalled)."""
        return list(self._call("GET", "/_emulator/messages")["messages"])

    def requests(self) -> list[dict[str, Any]]:
        """The last HTTP requests seen: method, path, status, request_id, retry_count."""
        return list(self._call("GET", "/_emulator/requests")["requests"])

    def faults(self) -> dict[str, Any]:
        """The active fault plan."""
        return dict(self._call("GET", "/_emulator/faults"))

    def set_faults(self, config: FaultConfig | None = None, **fields: Any) -> dict[str, Any]:
        """Replace the fault plan (a `FaultConfig`, or its fields as keyword arguments)."""
        plan = config or FaultConfig.model_validate(fields)
        return dict(self._call("PUT", "/_emulator/faults", plan.model_dump(mode="json")))

    def clear_faults(self) -> None:
        """Turn every fault off."""
        self.set_faults(FaultConfig())

    def now(self) -> float:
        """Virtual time in epoch seconds."""
        return float(self._call("GET", "/_emulator/clock")["now_epoch"])

    def advance_clock(self, seconds: float) -> float:
        """Move virtual time forward; returns the new virtual epoch seconds."""
        return float(
            self._call("POST", "/_emulator/clock/advance", {"seconds": seconds})["now_epoch"]
        )

    def force_end(self, batch_id: str) -> dict[str, Any]:
        """End a batch now (every request processed); returns the batch."""
        return dict(self._call("POST", f"/_emulator/batches/{batch_id}/end", {}))

    def force_expire(self, batch_id: str) -> dict[str, Any]:
        """Expire a batch now (requests not yet processed become `expired`)."""
        return dict(self._call("POST", f"/_emulator/batches/{batch_id}/expire", {}))
