"""Helpers of the API-side tests: a wire recorder, a fake sleep, a job with request files."""

import hashlib
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx2
import orjson
import polars as pl

from halfrate.gateway import BatchGateway, body_size
from halfrate.ledger import Ledger, RequestFile
from halfrate.submit import SubmitPolicy
from halfrate.workspace import JobPaths
from halfrate_emulator import EmulatorServer, FaultConfig, HttpFault

FAST_POLICY = SubmitPolicy(propagation_delay=0.0, backoff=(0.0,))


@dataclass
class Wire:
    """Every request the SDK client sent: (method, path, x-stainless-retry-count)."""

    sent: list[tuple[str, str, str]] = field(default_factory=list)

    def hook(self, request: httpx2.Request) -> None:
        retry = request.headers.get("x-stainless-retry-count", "")
        self.sent.append((request.method, request.url.path, retry))

    def creates(self) -> list[tuple[str, str, str]]:
        return [s for s in self.sent if s[0] == "POST" and s[1] == "/v1/messages/batches"]

    def count(self, method: str, suffix: str) -> int:
        return sum(1 for m, p, _ in self.sent if m == method and p.endswith(suffix))


@dataclass
class Sleeps:
    """A fake `sleep`: records the delays instead of waiting."""

    delays: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@dataclass
class Api:
    """An emulator with an SDK client and a gateway pointed at it."""

    server: EmulatorServer
    client: anthropic.Anthropic
    gateway: BatchGateway
    wire: Wire
    sleeps: Sleeps

    @property
    def admin(self) -> Any:
        return self.server.admin

    def faults(self, **fields: Any) -> None:
        """Replace the fault plan; `http=[("create", 500, 1), ...]` is (endpoint, status, count)."""
        http = tuple(HttpFault(endpoint=e, status=s, count=c) for e, s, c in fields.pop("http", ()))
        self.admin.set_faults(FaultConfig(http=http, **fields))

    def end_all(self) -> None:
        for entry in self.admin.audit():
            self.admin.force_end(entry["batch_id"])

    def submitted_ids(self) -> list[str]:
        """Every custom_id of every committed create, in order (duplicates kept)."""
        return [c for entry in self.admin.audit(custom_ids=True) for c in entry["custom_ids"]]


@dataclass
class Job:
    """A job folder with request files registered in its ledger."""

    paths: JobPaths
    ledger: Ledger
    files: list[RequestFile]

    def custom_ids(self, file: RequestFile) -> list[str]:
        lines = (self.paths.root / file.path).read_bytes().splitlines()
        return [orjson.loads(line)["custom_id"] for line in lines]

    def all_custom_ids(self) -> list[str]:
        return [c for f in self.files for c in self.custom_ids(f)]


def request_line(custom_id: str, text: str) -> bytes:
    params = {
        "model": "claude-sonnet-5",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": text}],
    }
    return orjson.dumps({"custom_id": custom_id, "params": params}) + b"\n"


def write_request_file(
    paths: JobPaths, attempt: int, part: int, custom_ids: list[str], purpose: str = "main"
) -> RequestFile:
    """Write a request file and its index as the build step would, and describe it."""
    name = "prime" if purpose == "prime" else f"part-{part:04d}"
    path = paths.requests_dir(attempt) / f"{name}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = b"".join(request_line(c, f"text of {c}") for c in custom_ids)
    path.write_bytes(data)
    pl.DataFrame(
        {
            "custom_id": custom_ids,
            "row_id": [c.split("_", 1)[1] for c in custom_ids],
            "attempt": [attempt] * len(custom_ids),
        },
        schema={"custom_id": pl.Utf8, "row_id": pl.Utf8, "attempt": pl.UInt8},
    ).write_parquet(paths.index_file(paths.relative(path)))
    return RequestFile(
        path=paths.relative(path),
        attempt=attempt,
        part=part,
        purpose=purpose,
        n_requests=len(custom_ids),
        body_bytes=body_size(len(data)),
        sha256=hashlib.sha256(data).hexdigest(),
    )
