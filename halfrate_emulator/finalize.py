"""Turning an ended batch into its results file and final `request_counts`.

Runs once per batch, the first time it is observed ended. The batch's prompt-cache lookups are
evaluated at its end instant against entries written by *other* batches (the "cold batch"
effect: requests of one batch never see each other's writes); its own writes are stored at the
end, for later batches to read.
"""

from __future__ import annotations

import logging
import math
import mmap
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from halfrate_emulator.cache import TTL_SECONDS, account, plan_prompt
from halfrate_emulator.faults import breaks_output, errored_result, injected_outcome
from halfrate_emulator.ids import stable_hash
from halfrate_emulator.lifecycle import BatchState
from halfrate_emulator.models import min_cacheable_tokens
from halfrate_emulator.options import FaultConfig
from halfrate_emulator.responder import respond
from halfrate_emulator.store import BatchRow, Store
from halfrate_emulator.validation import check_params

BATCH_SOURCE = "batch"
logger = logging.getLogger(__name__)


class BatchCache:
    """Cache view of one batch: reads see other batches' live entries; writes are deferred."""

    def __init__(self, store: Store, batch_id: str, at: float) -> None:
        self.store, self.batch_id, self.at = store, batch_id, at
        self._visible: dict[str, bool] = {}
        self.writes: dict[str, str] = {}
        self.reads: set[str] = set()

    def visible(self, key: str) -> bool:
        """True if another batch wrote `key` and it is live at this batch's instant."""
        if key not in self._visible:
            found = self.store.cache_rows([key], BATCH_SOURCE).get(key)
            self._visible[key] = bool(
                found and found[0] != self.batch_id and found[1] <= self.at < found[2]
            )
        return self._visible[key]

    def flush(self) -> None:
        """Store this batch's writes and refresh the entries it read."""
        entries = [
            (
                key,
                BATCH_SOURCE,
                self.batch_id,
                self.at,
                self.at + TTL_SECONDS[ttl],
                TTL_SECONDS[ttl],
            )
            for key, ttl in self.writes.items()
        ]
        self.store.put_cache(entries)
        self.store.refresh_cache([(self.at, key, BATCH_SOURCE) for key in self.reads])


def _succeeded(
    row: BatchRow, custom_id: str, params: dict[str, Any], cache: BatchCache, broken: bool
) -> Any:
    usage = account(plan_prompt(params), min_cacheable_tokens(params["model"]), cache.visible)
    for point in usage.writes:
        if cache.writes.get(point.key) != "1h":
            cache.writes[point.key] = point.ttl
    if usage.read_key:
        cache.reads.add(usage.read_key)
    message = respond(params, f"{row.id}/{custom_id}", usage, "batch")
    if broken:  # an output that does not match the schema it was asked for
        text = "{}" if params.get("output_config") else ""
        message["content"] = [{"type": "text", "text": text, "citations": None}]
    return {"type": "succeeded", "message": message}


def _result(row: BatchRow, faults: FaultConfig, item: dict[str, Any], cache: BatchCache) -> Any:
    """The result of one request that reached the "model"."""
    custom_id, params = item["custom_id"], item["params"]
    problem = check_params(params, row.version, in_batch=True)
    if problem:
        return errored_result("invalid_request_error", problem)
    outcome = injected_outcome(faults, row.id, custom_id)
    if outcome is not None:
        return outcome
    try:
        return _succeeded(row, custom_id, params, cache, breaks_output(faults, custom_id))
    except Exception:  # one odd request must not stop the whole batch from ending
        logger.exception("emulator: could not answer %s/%s", row.id, custom_id)
        return errored_result("api_error", "The emulator could not process this request.")


def _processed_ids(row: BatchRow, custom_ids: list[str], fraction: float) -> set[str]:
    """The requests that reached the model before a cancel/expiry (a stable subset)."""
    if fraction >= 1.0:
        return set(custom_ids)
    ranked = sorted(custom_ids, key=lambda cid: stable_hash(row.id, "progress", cid))
    return set(ranked[: math.floor(fraction * len(ranked))])


def finalize_batch(store: Store, row: BatchRow, state: BatchState, shuffle: bool) -> dict[str, int]:
    """Write `results.jsonl` for an ended batch and return its final `request_counts`."""
    folder = store.batch_dir(row.id)
    custom_ids = (folder / "custom_ids.txt").read_text().split()
    processed = _processed_ids(row, custom_ids, state.processed_fraction)
    unprocessed = {"type": "canceled" if state.end_kind == "canceled" else "expired"}
    faults = FaultConfig.model_validate_json(row.faults)
    cache = BatchCache(store, row.id, state.end_at)
    counts: Counter[str] = Counter()
    spans: list[tuple[int, int, int]] = []
    scratch = folder / "results.unordered"
    with (folder / "requests.jsonl").open("rb") as source, scratch.open("wb") as out:
        for line in source:
            item = orjson.loads(line)
            custom_id = item["custom_id"]
            result = _result(row, faults, item, cache) if custom_id in processed else unprocessed
            counts[str(result["type"])] += 1
            data = orjson.dumps({"custom_id": custom_id, "result": result}) + b"\n"
            order = stable_hash(row.id, "order", custom_id) if shuffle else len(spans)
            spans.append((order, out.tell(), len(data)))
            out.write(data)
    cache.flush()
    _write_ordered(scratch, folder / "results.jsonl", sorted(spans))
    scratch.unlink()
    return {"processing": 0} | {
        k: counts[k] for k in ("succeeded", "errored", "canceled", "expired")
    }


def _write_ordered(scratch: Path, target: Path, spans: list[tuple[int, int, int]]) -> None:
    """Copy result lines from `scratch` to `target` in the order of `spans`."""
    partial = target.with_suffix(".partial")
    with scratch.open("rb") as source, partial.open("wb") as out:
        if spans:
            with mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ) as view:
                for _, offset, length in spans:
                    out.write(view[offset : offset + length])
    partial.replace(target)
