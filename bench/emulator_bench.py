"""Emulator bench: (a) a 100,000-request (~200 MB) create, (b) streaming 100,000 results.

    .venv/bin/python bench/emulator_bench.py [--requests 100000] [--runs 3]

The emulator runs as a subprocess (`python -m halfrate_emulator`) so its peak RSS can be read
from /proc/PID/status (VmHWM). Reported per run:
- `create_wall_s`: wall time from the first body byte sent to the 200 response (accepted);
  `create_emulator_cpu_s`: the emulator's CPU (user + sys) for that create (less sensitive to
  other load on a shared machine than wall time);
- `body_mb`, `emulator_peak_rss_mib` (VmHWM after the create), `idle_rss_mib` (before it),
  `peak_over_body` (peak RSS / body size; target < 2);
- `finalize_s`: the admin force-end call, which builds the results file once (responder,
  cache accounting, shuffle) — not part of the streaming figure;
- `results_lines_per_s`: a raw streaming GET of the results with the stdlib `http.client`
  (1 MiB reads, lines counted as bytes arrive; target >= 100,000 lines/s), `results_mb`;
  `results_lines_per_s_httpx2`: the same download through httpx2 (pure-Python h11 parsing).
Bodies are synthetic with a fixed seed and cached in bench/out/emulator/.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import orjson

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "emulator"
SEED = 20261124
HEADERS = {"x-api-key": "bench", "anthropic-version": "2023-06-01"}
WORDS = [
    "the",
    "order",
    "arrived",
    "late",
    "and",
    "the",
    "box",
    "was",
    "damaged",
    "so",
    "I",
    "would",
    "like",
    "a",
    "refund",
    "or",
    "a",
    "replacement",
    "please",
    "check",
    "my",
    "account",
    "because",
    "the",
    "invoice",
    "shows",
    "a",
    "charge",
    "twice",
    "this",
    "month",
    "Zoë",
    "José",
    "said",
    '"it',
    "keeps",
    'crashing"',
    "when",
    "I",
    "open",
    "settings",
]


def build_body(requests: int, chars: int = 1850) -> Path:
    """A `{"requests": [...]}` body of ~2 KB requests, cached on disk."""
    path = OUT / f"create-{requests}.json"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)
    with path.open("wb") as out:
        out.write(b'{"requests":[')
        for index in range(requests):
            text = " ".join(rng.choice(WORDS) for _ in range(chars // 5))[:chars]
            item = {
                "custom_id": f"req-{index:06d}",
                "params": {
                    "model": "claude-haiku-4-5",
                    "max_tokens": 64,
                    "messages": [{"role": "user", "content": text}],
                },
            }
            out.write((b"," if index else b"") + orjson.dumps(item))
        out.write(b"]}")
    return path


def start_emulator(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "halfrate_emulator", "--port", "0", "--time-scale", "0"]
    command += ["--processing-seconds", "60", "--data-dir", str(data_dir)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert process.stdout is not None
    line = process.stdout.readline()
    return process, line.rsplit(" ", 1)[-1].strip()


def rss(pid: int, field: str) -> float:
    """A /proc/PID/status memory field in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            yield chunk


def one_run(body: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        process, url = start_emulator(Path(tmp))
        try:
            return measure(process.pid, url, body)
        finally:
            process.terminate()
            process.wait(timeout=30)


def measure(pid: int, url: str, body: Path) -> dict[str, Any]:
    size = body.stat().st_size
    with httpx2.Client(base_url=url, headers=HEADERS, timeout=600) as http:
        http.get("/v1/messages/batches").raise_for_status()
        idle = rss(pid, "VmRSS")
        cpu_before = cpu_seconds(pid)
        started = time.perf_counter()
        created = http.post(
            "/v1/messages/batches",
            content=file_chunks(body),
            headers={"content-length": str(size), "content-type": "application/json"},
        )
        create_wall = time.perf_counter() - started
        create_cpu = cpu_seconds(pid) - cpu_before
        created.raise_for_status()
        peak = rss(pid, "VmHWM")
        batch_id = created.json()["id"]
        started = time.perf_counter()
        http.post(f"/_emulator/batches/{batch_id}/end").raise_for_status()
        finalize = time.perf_counter() - started
        lines, nbytes, seconds = stream_raw(url, batch_id)
        httpx_lines, _, httpx_seconds = stream_results(http, batch_id)
    return {
        "requests": created.json()["request_counts"]["processing"],
        "body_mb": round(size / 1e6, 1),
        "create_wall_s": round(create_wall, 2),
        "create_emulator_cpu_s": round(create_cpu, 2),
        "idle_rss_mib": round(idle, 1),
        "emulator_peak_rss_mib": round(peak, 1),
        "peak_over_body": round(peak * 2**20 / size, 2),
        "finalize_s": round(finalize, 2),
        "results_lines": lines,
        "results_mb": round(nbytes / 1e6, 1),
        "results_lines_per_s": round(lines / seconds),
        "results_lines_per_s_httpx2": round(httpx_lines / httpx_seconds),
    }


def stream_raw(url: str, batch_id: str) -> tuple[int, int, float]:
    """Stream the results with the stdlib's http.client, counting lines as bytes arrive."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=600)
    lines = nbytes = 0
    started = time.perf_counter()
    conn.request("GET", f"/v1/messages/batches/{batch_id}/results", headers=HEADERS)
    response = conn.getresponse()
    assert response.status == 200, response.status
    while chunk := response.read(1 << 20):
        lines += chunk.count(b"\n")
        nbytes += len(chunk)
    elapsed = time.perf_counter() - started
    conn.close()
    return lines, nbytes, elapsed


def stream_results(http: httpx2.Client, batch_id: str) -> tuple[int, int, float]:
    lines = nbytes = 0
    started = time.perf_counter()
    with http.stream("GET", f"/v1/messages/batches/{batch_id}/results") as response:
        response.raise_for_status()
        for chunk in response.iter_raw(1 << 20):
            lines += chunk.count(b"\n")
            nbytes += len(chunk)
    return lines, nbytes, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    body = build_body(args.requests)
    runs = [one_run(body) for _ in range(args.runs)]
    for run in runs:
        print(json.dumps(run))
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float)]
    median = {k: statistics.median(r[k] for r in runs) for k in keys}
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(json.dumps({"median": median, "machine": machine, "date": time.strftime("%Y-%m-%d")}))


if __name__ == "__main__":
    main()
