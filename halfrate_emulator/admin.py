"""Admin endpoints under `/_emulator/` (no API key; an optional admin token).

GET  /_emulator/health                     {"status":"ok","now":…,"now_epoch":…,"time_scale":…}
POST /_emulator/reset                      forget all state
GET  /_emulator/audit[?custom_ids=true]    {"creates":[{batch_id,request_count,bytes,created_at,
                                             response_dropped[,custom_ids]}]}
GET  /_emulator/messages                   {"messages":[{digest,model,input_tokens,output_tokens,
                                             created_at,held}]}: every answered Messages call
GET  /_emulator/faults                     the fault plan (counts show what is left)
PUT  /_emulator/faults  FaultConfig JSON   replace the plan (POST works too)
GET  /_emulator/clock                      {"now":…,"now_epoch":…,"time_scale":…}
POST /_emulator/clock/advance {"seconds"}  move virtual time forward
POST /_emulator/batches/{id}/end           end processing now (all requests processed)
POST /_emulator/batches/{id}/expire        expire now (unprocessed requests -> expired)
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from halfrate_emulator.clock import rfc3339
from halfrate_emulator.errors import ApiError, invalid
from halfrate_emulator.http import Handler, guard, json_response
from halfrate_emulator.lifecycle import batch_state, render_batch
from halfrate_emulator.options import FaultConfig
from halfrate_emulator.service import Emulator

ADMIN_HEADER = "x-emulator-admin-token"


class AdminRoutes:
    """Admin handlers bound to one `Emulator`."""

    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator

    def admin(self, handler: Handler) -> Handler:
        """Check the admin token (when one is configured), then run the handler guarded."""

        async def endpoint(request: Request) -> Response:
            token = self.emu.options.admin_token
            if token is not None and request.headers.get(ADMIN_HEADER) != token:
                raise ApiError(401, f"admin endpoints need the {ADMIN_HEADER} header")
            return await handler(request)

        return guard(endpoint)

    def _clock(self) -> dict[str, Any]:
        now = self.emu.clock.now()
        return {"now": rfc3339(now), "now_epoch": now, "time_scale": self.emu.clock.scale}

    async def health(self, request: Request) -> Response:
        """Liveness plus the virtual clock."""
        return json_response({"status": "ok"} | self._clock())

    async def clock(self, request: Request) -> Response:
        """The virtual clock."""
        return json_response(self._clock())

    async def advance(self, request: Request) -> Response:
        """Move the virtual clock forward by `seconds`."""
        body = await _json(request)
        seconds = body.get("seconds") if isinstance(body, dict) else None
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise invalid("seconds: Input should be a number >= 0")
        await run_in_threadpool(self.emu.advance_clock, float(seconds))
        return json_response(self._clock())

    async def reset(self, request: Request) -> Response:
        """Forget all state."""
        await run_in_threadpool(self.emu.reset)
        return json_response({"status": "reset"})

    async def audit(self, request: Request) -> Response:
        """Every committed create."""
        with_ids = request.query_params.get("custom_ids", "").lower() in ("1", "true", "yes")
        return json_response({"creates": await run_in_threadpool(self._audit, with_ids)})

    def _audit(self, with_ids: bool) -> list[dict[str, Any]]:
        with self.emu.lock:
            rows = self.emu.store.audit_rows()
        creates = []
        for batch_id, count, size, created_at, dropped in rows:
            entry: dict[str, Any] = {
                "batch_id": batch_id,
                "request_count": count,
                "bytes": size,
                "created_at": rfc3339(created_at),
                "response_dropped": bool(dropped),
            }
            if with_ids:
                path = self.emu.store.batch_dir(batch_id) / "custom_ids.txt"
                entry["custom_ids"] = path.read_text().split() if path.exists() else None
            creates.append(entry)
        return creates

    async def messages(self, request: Request) -> Response:
        """Every answered (paid) Messages call, oldest first."""
        return json_response({"messages": await run_in_threadpool(self._messages)})

    def _messages(self) -> list[dict[str, Any]]:
        with self.emu.lock:
            rows = self.emu.store.message_audit_rows()
        keys = ("digest", "model", "input_tokens", "output_tokens", "created_at", "held")
        return [
            dict(zip(keys, (*row[:4], rfc3339(row[4]), bool(row[5])), strict=True)) for row in rows
        ]

    async def requests(self, request: Request) -> Response:
        """The last HTTP requests seen."""
        return json_response({"requests": list(self.emu.request_log)})

    async def get_faults(self, request: Request) -> Response:
        """The active fault plan."""
        return json_response(self.emu.faults.snapshot())

    async def put_faults(self, request: Request) -> Response:
        """Replace the fault plan."""
        try:
            config = FaultConfig.model_validate(await _json(request))
        except ValidationError as err:
            raise invalid(f"faults: {err.errors(include_url=False)}") from None
        self.emu.faults.replace(config)
        return json_response(self.emu.faults.snapshot())

    async def force(self, request: Request) -> Response:
        """Force-end or force-expire a batch."""
        batch_id, action = request.path_params["batch_id"], request.path_params["action"]
        if action not in ("end", "expire"):
            raise ApiError(404, f"unknown admin action {action!r}")
        base = str(request.base_url).rstrip("/")
        return json_response(await run_in_threadpool(self._force, batch_id, action, base))

    def _force(self, batch_id: str, action: str, base_url: str) -> dict[str, Any]:
        with self.emu.lock:
            row, state = self.emu.observe(batch_id)
            if not state.ended:
                column = "forced_end_at" if action == "end" else "forced_expire_at"
                self.emu.store.update_batch(batch_id, **{column: self.emu.clock.now()})
            row, state = self.emu.observe(batch_id)
            return render_batch(row, batch_state(row, self.emu.clock.now()), base_url)

    def routes(self) -> list[Route]:
        """The admin routes."""
        return [
            Route("/_emulator/health", self.admin(self.health), methods=["GET"]),
            Route("/_emulator/reset", self.admin(self.reset), methods=["POST"]),
            Route("/_emulator/audit", self.admin(self.audit), methods=["GET"]),
            Route("/_emulator/messages", self.admin(self.messages), methods=["GET"]),
            Route("/_emulator/requests", self.admin(self.requests), methods=["GET"]),
            Route("/_emulator/faults", self.admin(self.get_faults), methods=["GET"]),
            Route("/_emulator/faults", self.admin(self.put_faults), methods=["PUT", "POST"]),
            Route("/_emulator/clock", self.admin(self.clock), methods=["GET"]),
            Route("/_emulator/clock/advance", self.admin(self.advance), methods=["POST"]),
            Route(
                "/_emulator/batches/{batch_id}/{action}", self.admin(self.force), methods=["POST"]
            ),
        ]


async def _json(request: Request) -> Any:
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise invalid("admin body must be JSON") from None
