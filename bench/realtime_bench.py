"""What recording every real-time call costs (issue 11 item 3).

halfrate's real-time sender records each request in the job's SQLite ledger before its call
(`synchronous=full`) and its answer right after, and checks for a user cancel before each
call. Against a local emulator that answers at once, that bookkeeping is all there is to
measure: this sends the same N requests twice at the same concurrency, once as bare SDK calls
through the gateway (nothing recorded), once with `halfrate.realtime.send_file` (recorded,
then the verified results file written), and prints requests per second and CPU seconds of
each. Against the real API a call takes seconds, so the difference is what it adds per call.

    .venv/bin/python bench/realtime_bench.py --requests 400 --concurrency 4 8
"""

import argparse
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import anthropic
import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "api"))

from apitools import write_request_file  # noqa: E402

from halfrate.gateway import BatchGateway  # noqa: E402
from halfrate.ledger import Ledger  # noqa: E402
from halfrate.realtime import RealtimePolicy, send_file  # noqa: E402
from halfrate.workspace import JobPaths  # noqa: E402
from halfrate_emulator import EmulatorOptions, EmulatorServer  # noqa: E402


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bare(gateway: BatchGateway, params: list[dict[str, object]], width: int) -> None:
    with ThreadPoolExecutor(width) as pool:
        list(pool.map(lambda p: gateway.create_message(p, timeout=60), params))


def recorded(gateway: BatchGateway, folder: Path, n: int, width: int) -> None:
    paths = JobPaths(folder)
    paths.root.mkdir(parents=True)
    ledger = Ledger.create(paths.ledger)
    file = write_request_file(paths, 1, 1, [f"a1_r{i}" for i in range(n)])
    ledger.add_request_files([file])
    sent = send_file(ledger, paths, gateway, ledger.record(file.path), RealtimePolicy(width))
    assert sent.counts["succeeded"] == n


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 8])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        options = EmulatorOptions(time_scale=0, messages_rate_limit=10**6)
        with EmulatorServer(Path(tmp) / "emulator", port=0, options=options) as server:
            client = anthropic.Anthropic(api_key="bench", base_url=server.base_url)
            gateway = BatchGateway(client)
            probe = Path(tmp) / "probe"
            paths = JobPaths(probe)
            paths.root.mkdir()
            file = write_request_file(paths, 1, 1, [f"a1_r{i}" for i in range(args.requests)])
            lines = (paths.root / file.path).read_bytes().splitlines()
            params = [orjson.loads(line)["params"] for line in lines]
            print("| concurrency | bare calls/s | recorded calls/s | bare CPU-s | recorded CPU-s |")
            print("|---:|---:|---:|---:|---:|")
            for width in args.concurrency:
                walls, cpus = [], []
                job = Path(tmp) / f"job{width}"
                for run in (
                    partial(bare, gateway, params, width),
                    partial(recorded, gateway, job, args.requests, width),
                ):
                    start, used = time.perf_counter(), cpu()
                    run()
                    walls.append(time.perf_counter() - start)
                    cpus.append(cpu() - used)
                rates = [args.requests / w for w in walls]
                print(
                    f"| {width} | {rates[0]:,.0f} | {rates[1]:,.0f} | {cpus[0]:.2f} | "
                    f"{cpus[1]:.2f} |"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
