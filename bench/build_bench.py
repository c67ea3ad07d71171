"""Bench build-requests: synthetic rows -> request files, timed in a fresh subprocess per run.

    .venv/bin/python -m bench.build_bench                    # 100k and 1M rows, 3 runs each
    .venv/bin/python -m bench.build_bench --rows 100000 --runs 5 --workdir /dev/shm
    .venv/bin/python -m bench.build_bench --extract --rows 1000000 --runs 1   # extract instead

Each run builds into bench/out/build-job-<rows> with the real Ledger and the default limits
(100,000 requests / 256 MB per file), then deletes the output. The parent reads the child's
peak RSS and CPU times from os.wait4; the child reports the wall time of build_requests alone.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench._data import OUT, make_docs, make_docs_csv, make_instructions


def extract_child(source: Path, root: Path) -> None:
    from halfrate.config import JobConfig
    from halfrate.extract import extract_rows
    from halfrate.settings import Settings
    from halfrate.workspace import JobPaths

    job = JobConfig(
        name="bench", source=source, id_column="row_id", instructions="x", labels=["a", "b"]
    )
    started = time.perf_counter()
    summary = extract_rows(job, JobPaths(root), Settings())
    wall = time.perf_counter() - started
    print(json.dumps({"build_wall": wall, "files": 1, "body_bytes": source.stat().st_size}))
    assert summary.valid_rows == summary.source_rows


def child(rows: int, root: Path) -> None:
    from halfrate.build import build_requests
    from halfrate.config import JobConfig
    from halfrate.ledger import Ledger
    from halfrate.settings import Settings
    from halfrate.workspace import JobPaths

    source = make_docs(rows)
    labels = ["billing", "access", "shipping", "account", "other"]
    job = JobConfig(name="bench", source=source, instructions=make_instructions(), labels=labels)
    paths = JobPaths(root)
    started = time.perf_counter()
    files = build_requests(
        job, paths, Ledger.create(paths.ledger), 1, source, Settings(), prime=True
    )
    wall = time.perf_counter() - started
    body = sum(f.body_bytes for f in files)
    print(json.dumps({"build_wall": wall, "files": len(files), "body_bytes": body}))


def run_once(rows: int, workdir: Path, extract: str | None) -> dict[str, float]:
    root = workdir / f"build-job-{rows}"
    shutil.rmtree(root, ignore_errors=True)
    command = [sys.executable, "-m", "bench.build_bench", "--child", str(rows), str(root)]
    if extract:
        command += ["--extract-source", extract]
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=Path(__file__).parents[1])
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    process_wall = time.perf_counter() - started
    shutil.rmtree(root, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"build child failed with exit code {proc.returncode}")
    result = json.loads(output)
    return result | {
        "process_wall": process_wall,
        "user": usage.ru_utime,
        "sys": usage.ru_stime,
        "peak_mib": usage.ru_maxrss / 1024,  # Linux reports KiB
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--workdir", type=Path, default=OUT, help="where the job folder goes (e.g. /dev/shm)"
    )
    parser.add_argument(
        "--extract", action="store_true", help="bench extract (Parquet and CSV sources) instead"
    )
    parser.add_argument("--child", nargs=2, metavar=("ROWS", "ROOT"), help=argparse.SUPPRESS)
    parser.add_argument("--extract-source", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child and args.extract_source:
        extract_child(Path(args.extract_source), Path(args.child[1]))
        return
    if args.child:
        child(int(args.child[0]), Path(args.child[1]))
        return
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} {platform.processor() or platform.machine()}, ")
    print(f"# {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f} at start")
    print(f"# output in {args.workdir}")
    if args.extract:
        print("# extract: 'MB out' is the source size, 'requests/s' is rows/s; 'files' is 1")
    print("| rows | files | MB out | build wall (median, min-max) | requests/s | MB/s "
          "| process wall | user+sys s | peak RSS MiB (max) |")  # fmt: skip
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    cases: list[tuple[int, str | None]] = []
    for rows in args.rows:
        if args.extract:
            cases += [(rows, str(make_docs(rows))), (rows, str(make_docs_csv(rows)))]
        else:
            make_docs(rows)
            cases.append((rows, None))
    for rows, extract in cases:
        results = [run_once(rows, args.workdir, extract) for _ in range(args.runs)]
        walls = [r["build_wall"] for r in results]
        wall = statistics.median(walls)
        megabytes = results[0]["body_bytes"] / 1e6
        cpu = statistics.median(r["user"] + r["sys"] for r in results)
        print(
            f"| {rows:,}{' ' + Path(extract).suffix if extract else ''} | {results[0]['files']:.0f} | {megabytes:,.1f} "
            f"| {wall:.2f} s ({min(walls):.2f}-{max(walls):.2f}) | {rows / wall:,.0f} "
            f"| {megabytes / wall:,.0f} | {statistics.median(r['process_wall'] for r in results):.2f} s "
            f"| {cpu:.2f} | {max(r['peak_mib'] for r in results):,.0f} |",
            flush=True,
        )
    print(f"# load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
