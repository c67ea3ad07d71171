"""Download bench: 100,000 results from the emulator to a file, then verified.

    .venv/bin/python bench/download_bench.py [--requests 100000] [--runs 3]

The emulator runs as a subprocess on loopback (clock frozen; the batch is force-ended). One
batch of `--requests` short requests is submitted through `submit_pending`, then each run
measures, in this process:
- `raw`: `BatchGateway.download_results` alone (retrieve + streamed GET to a file);
- `verify`: `verify_results` of that file against the request file's index;
- `download_ended`: the whole step (retrieve, stream to .part, verify, rename, ledger update).
Reported: wall, lines/s, MB/s, this process's CPU seconds and peak RSS growth (the high-water
mark is reset before each step through /proc/self/clear_refs).
"""

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from submit_bench import _cpu, _vm, start_emulator  # noqa: E402

OUT = ROOT / "bench" / "out" / "download"


def measure(step: Callable[[], Any]) -> dict[str, float]:
    Path("/proc/self/clear_refs").write_text("5")
    rss0, cpu0, t0 = _vm("VmRSS"), _cpu(), time.perf_counter()
    step()
    return {
        "wall_s": time.perf_counter() - t0,
        "cpu_s": _cpu() - cpu0,
        "rss_growth_mib": _vm("VmHWM") - rss0,
    }


def build_job(root: Path, n: int) -> tuple[Any, Any]:
    from halfrate.gateway import body_size
    from halfrate.ledger import Ledger, RequestFile
    from halfrate.workspace import JobPaths

    paths = JobPaths(root)
    path = paths.requests_dir(1) / "part-0001.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = [f"a1_doc-{i:07d}" for i in range(n)]
    params = {"model": "claude-sonnet-5", "max_tokens": 64}
    data = b"".join(
        orjson.dumps(
            {
                "custom_id": c,
                "params": {**params, "messages": [{"role": "user", "content": f"label {c}"}]},
            }
        )
        + b"\n"
        for c in ids
    )
    path.write_bytes(data)
    pl.DataFrame(
        {"custom_id": ids, "row_id": [c[3:] for c in ids], "attempt": [1] * n},
        schema={"custom_id": pl.Utf8, "row_id": pl.Utf8, "attempt": pl.UInt8},
    ).write_parquet(paths.index_file(paths.relative(path)))
    ledger = Ledger.create(paths.ledger)
    ledger.add_request_files(
        [
            RequestFile(
                path=paths.relative(path),
                attempt=1,
                part=1,
                purpose="main",
                n_requests=n,
                body_bytes=body_size(len(data)),
                sha256=hashlib.sha256(data).hexdigest(),
            )
        ]
    )
    return paths, ledger


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    import anthropic

    from halfrate.download import download_ended, verify_results
    from halfrate.gateway import BatchGateway
    from halfrate.ledger import BatchStatus
    from halfrate.progress import check_batches
    from halfrate.submit import submit_pending
    from halfrate_emulator import EmulatorAdmin

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_emulator(Path(tmp) / "emulator")
        try:
            paths, ledger = build_job(Path(tmp) / "job", args.requests)
            gateway = BatchGateway(anthropic.Anthropic(api_key="bench", base_url=url))
            [record] = submit_pending(ledger, paths, gateway, attempt=1)
            assert record.batch_id is not None
            batch_id = record.batch_id
            EmulatorAdmin(url).force_end(batch_id)
            assert check_batches(ledger, gateway).all_ended
            raw = Path(tmp) / "raw.jsonl"
            index = paths.index_file(record.file.path)
            counts = ledger.records()[0].request_counts or {}
            for run in range(1, args.runs + 1):
                raw.unlink(missing_ok=True)
                r = measure(lambda: gateway.download_results(batch_id, raw))
                size = raw.stat().st_size
                rows.append({"run": run, "step": "raw", "bytes": size, **r})
                v = measure(lambda: verify_results(raw, index, counts))
                rows.append({"run": run, "step": "verify", "bytes": size, **v})
                paths.results_file(batch_id).unlink(missing_ok=True)
                ledger.set_status(batch_id, BatchStatus.ended)
                d = measure(lambda: download_ended(ledger, paths, gateway))
                rows.append({"run": run, "step": "download_ended", "bytes": size, **d})
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    n = args.requests
    print(f"{n} results, {rows[0]['bytes'] / 1e6:.1f} MB ({rows[0]['bytes'] / n:.0f} B/line)")
    for step in ("raw", "verify", "download_ended"):
        mine = [r for r in rows if r["step"] == step]
        wall = statistics.median(r["wall_s"] for r in mine)
        cpu = statistics.median(r["cpu_s"] for r in mine)
        growth = statistics.median(r["rss_growth_mib"] for r in mine)
        print(
            f"{step:15s} median of {len(mine)}: wall {wall:5.2f} s  {n / wall:9,.0f} lines/s  "
            f"{mine[0]['bytes'] / wall / 1e6:6.1f} MB/s  client CPU {cpu:5.2f} s  "
            f"RSS growth {growth:5.1f} MiB  (walls: "
            + ", ".join(f"{r['wall_s']:.2f}" for r in mine)
            + ")"
        )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
