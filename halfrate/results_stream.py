"""A batch's results download: which URL to follow, and the raw stream written to a file.

A batch's `results_url` is followed only when it points at the configured base URL (or the
client talks to the production API); otherwise its path is joined to the base URL, so an
emulator or a proxy never sends the key to api.anthropic.com.
"""

import logging
from pathlib import Path
from typing import Any

import httpx2

from halfrate.api_errors import call_api
from halfrate.progress_hooks import SILENT, StepProgress

log = logging.getLogger("halfrate.gateway")  # a part of the gateway, and logs as the gateway

PRODUCTION_HOST = "api.anthropic.com"


def results_url(batch_results_url: str, base_url: str) -> str:
    """The URL (or path under `base_url`) to fetch a batch's results from."""
    target = httpx2.URL(batch_results_url)
    if not target.is_absolute_url:
        return batch_results_url
    base = httpx2.URL(base_url)
    same_origin = (target.scheme, target.host, target.port) == (
        base.scheme,
        base.host,
        base.port,
    )
    if same_origin or base.host == PRODUCTION_HOST:
        return batch_results_url
    log.warning(
        "results_url %s is not on the configured base URL %s; fetching its path from the "
        "base URL instead",
        batch_results_url,
        base,
    )
    path = target.raw_path.decode("ascii")
    base_path = base.raw_path.decode("ascii").rstrip("/")
    if base_path and path.startswith(base_path + "/"):
        path = path[len(base_path) :]
    return path


def write_results(response: httpx2.Response, dest: Path, progress: StepProgress = SILENT) -> int:
    """Write a results stream to `dest` unchanged, then close it; returns the bytes written.

    `progress` advances by each chunk's bytes. A dropped connection raises an `APIError` of
    kind `no_response`.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with dest.open("wb") as fh:
            return call_api("results", lambda: _copy(response, fh, progress))
    finally:
        response.close()


def _copy(response: httpx2.Response, fh: Any, progress: StepProgress) -> int:
    length = response.headers.get("content-length", "")
    if length.isdigit():
        progress.set_total(int(length))
    written = 0
    for chunk in response.iter_bytes():
        fh.write(chunk)
        written += len(chunk)
        progress.advance(len(chunk))
    return written
