"""Submit bench: one full (~256 MB, ~42,000-request) batch file sent to the emulator.

    .venv/bin/python bench/submit_bench.py [--runs 3] [--contrast]

The emulator runs as a subprocess on loopback; each measured client is a fresh subprocess, so
its figures are its own. Reported per run:
- `create_cpu_s` / `create_wall_s`: CPU (user+sys) and wall time of the create call alone,
  from `getrusage(RUSAGE_SELF)` inside the client (the target: <= 1 s CPU per full batch);
- `create_peak_rss_mib`: the client's peak RSS during the create (VmHWM, reset just before the
  call through /proc/self/clear_refs), imports included (target <= 100 MiB);
- `setup_peak_rss_mib`: the peak before it: importing anthropic and building the client;
- `rss_growth_mib`: create peak minus RSS just before the call (what the create itself costs);
- `process_cpu_s`: the whole client process (imports + client construction + create).

`--contrast` also runs `client.messages.batches.create(requests=[...])` on the same file
(the SDK's own path: load every line into a dict, then the SDK serializes the body).
The request file is synthetic with a fixed seed and cached in bench/out/submit/.
"""

import argparse
import json
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "submit"
MAX_BODY = 256_000_000
SEED = 20261124

PROSE = (
    "the order arrived late and the box was damaged so I would like a refund or a replacement "
    "please check my account because the invoice shows a charge twice this month our team "
    "needs access to the shared drive before the meeting on Friday morning Zoë José Françoise "
    'Søren Łukasz said "it keeps crashing" when I open settings (ref: C:\\tickets\\4411)\t—'
)
WORDS = PROSE.split(" ")


def _text(rng: random.Random, chars: int) -> str:
    out: list[str] = []
    size = 0
    while size < chars:
        word = rng.choice(WORDS)
        out.append(word)
        size += len(word) + 1
        if rng.random() < 0.02:
            out.append("\n\n")
    return " ".join(out)[:chars]


def build_request_file(path: Path, max_requests: int) -> tuple[int, int]:
    """A full batch file: ~6.1 KB requests until the body would pass 256 MB."""
    rng = random.Random(SEED)
    instructions = _text(rng, 3960)
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": ["refund", "login", "billing"]}},
        "required": ["label"],
        "additionalProperties": False,
    }
    body = 13 + 2 - 1
    n = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        while n < max_requests:
            request = {
                "custom_id": f"a1_doc-{n:07d}",
                "params": {
                    "model": "claude-sonnet-5",
                    "max_tokens": 64,
                    "system": [
                        {
                            "type": "text",
                            "text": instructions,
                            "cache_control": {"type": "ephemeral", "ttl": "1h"},
                        }
                    ],
                    "messages": [{"role": "user", "content": _text(rng, 1545)}],
                    "output_config": {"format": {"type": "json_schema", "schema": schema}},
                },
            }
            line = orjson.dumps(request) + b"\n"
            if body + len(line) > MAX_BODY:
                break
            fh.write(line)
            body += len(line)
            n += 1
    tmp.rename(path)
    return n, body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_emulator(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "halfrate_emulator", "--port", str(port), "--data-dir",
         str(data_dir), "--time-scale", "0"],
        cwd=ROOT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/_emulator/health", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the emulator did not start")


def _vm(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def client_main(mode: str, path: Path, base_url: str) -> None:
    """Runs in the measured subprocess; prints one JSON line."""
    import anthropic

    from halfrate.gateway import BatchGateway, body_size

    client = anthropic.Anthropic(api_key="bench", base_url=base_url, max_retries=0)
    setup_peak = _vm("VmHWM")  # imports + client construction (its SSL context spikes RSS)
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark
    rss_before = _vm("VmRSS")
    cpu0, t0 = _cpu(), time.perf_counter()
    if mode == "stream":
        batch = BatchGateway(client).create_from_file(path, body_size(path.stat().st_size))
    else:
        requests = [orjson.loads(line) for line in path.open("rb")]
        batch = client.messages.batches.create(requests=requests)
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    counts = batch.request_counts
    print(
        json.dumps(
            {
                "mode": mode,
                "batch_id": batch.id,
                "requests": counts.processing,
                "create_wall_s": wall,
                "create_cpu_s": cpu,
                "setup_peak_rss_mib": setup_peak,
                "rss_before_mib": rss_before,
                "create_peak_rss_mib": _vm("VmHWM"),
                "rss_growth_mib": _vm("VmHWM") - rss_before,
            }
        )
    )


def run_client(mode: str, path: Path, base_url: str) -> dict[str, Any]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--client", mode, "--file", str(path), "--base-url", base_url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(f"client {mode} failed with status {status}")
    result: dict[str, Any] = json.loads(output.decode().strip().splitlines()[-1])
    result["process_cpu_s"] = usage.ru_utime + usage.ru_stime
    result["process_maxrss_mib"] = usage.ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-requests", type=int, default=100_000)
    parser.add_argument("--contrast", action="store_true", help="also run batches.create(list)")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args.client, args.file, args.base_url)
        return

    path = OUT / f"full-batch-{args.max_requests}.jsonl"
    if not path.exists():
        t0 = time.perf_counter()
        n, body = build_request_file(path, args.max_requests)
        print(f"built {path.name}: {n} requests, body {body:,} bytes "
              f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    size = path.stat().st_size
    print(f"request file: {size / 1e6:.1f} MB, body {size + 14:,} bytes")

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_emulator(Path(tmp) / "emulator")
        try:
            modes = ["stream"] * args.runs + (["sdk-create"] if args.contrast else [])
            for mode in modes:
                r = run_client(mode, path, url)
                results.append(r)
                print(
                    f"{mode:10s} requests {r['requests']:6d}  create wall {r['create_wall_s']:5.2f} s"
                    f"  create CPU {r['create_cpu_s']:5.2f} s  peak RSS {r['create_peak_rss_mib']:7.1f}"
                    f" MiB (growth {r['rss_growth_mib']:6.1f}, setup peak "
                    f"{r['setup_peak_rss_mib']:6.1f})  process CPU {r['process_cpu_s']:5.2f} s"
                )
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    stream = [r for r in results if r["mode"] == "stream"]
    if stream:
        cpu = statistics.median(r["create_cpu_s"] for r in stream)
        peak = statistics.median(r["create_peak_rss_mib"] for r in stream)
        wall = statistics.median(r["create_wall_s"] for r in stream)
        print(
            f"median of {len(stream)} streamed creates: wall {wall:.2f} s "
            f"({(size + 14) / wall / 1e6:.0f} MB/s), create CPU {cpu:.2f} s (target <= 1 s), "
            f"peak RSS {peak:.1f} MiB (target <= 100 MiB)"
        )
    (OUT / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
