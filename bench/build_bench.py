"""Bench build-requests: synthetic rows -> request files, timed in a fresh subprocess per run.

    .venv/bin/python -m bench.build_bench                    # 100k and 1M rows, 3 runs each
    .venv/bin/python -m bench.build_bench --rows 100000 --runs 5 --workdir /dev/shm
    .venv/bin/python -m bench.build_bench --extract --rows 1000000 --runs 1   # extract instead
    .venv/bin/python -m bench.build_bench --prompt --rows 100000 --runs 5     # extract + build:
        # one text column vs the template "Title: {title}\n\n{body}" over two columns

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

from bench._data import OUT, make_docs, make_docs_csv, make_instructions, make_titled_docs

LABELS = ["billing", "access", "shipping", "account", "other"]
TWO_COLUMNS = "Title: {title}\n\n{body}"
REPO = Path(__file__).resolve().parents[1]
PILOT_ENV = "HALFRATE_BENCH_PILOT_ROWS"


def extract_child(source: Path, root: Path) -> None:
    from bench._data import label_job as JobConfig
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
    from bench._data import label_job as JobConfig
    from halfrate.build import build_requests
    from halfrate.ledger import Ledger
    from halfrate.settings import Settings
    from halfrate.workspace import JobPaths

    source = make_docs(rows)
    labels = ["billing", "access", "shipping", "account", "other"]
    job = JobConfig(name="bench", source=source, instructions=make_instructions(), labels=labels)
    paths = JobPaths(root)
    pilot_rows = int(os.environ.get(PILOT_ENV, "0"))
    from halfrate.pilot import sample_row_ids  # (imports the gateway: not part of the build)

    started = time.perf_counter()
    sample = []
    if pilot_rows:  # as pipeline.build does it: sample, then build prime + pilot + main
        sample = sample_row_ids(source, pilot_rows, job.fingerprint())
    files = build_requests(
        job, paths, Ledger.create(paths.ledger), 1, source, Settings(), True, sample
    )
    wall = time.perf_counter() - started
    body = sum(f.body_bytes for f in files)
    print(json.dumps({"build_wall": wall, "files": len(files), "body_bytes": body}))


def prompt_child(rows: int, root: Path, variant: str) -> None:
    """Extract then build: the source's one text column, or a template over two columns."""
    from bench._data import label_job as JobConfig
    from halfrate.build import build_requests
    from halfrate.extract import extract_rows
    from halfrate.ledger import Ledger
    from halfrate.settings import Settings
    from halfrate.workspace import JobPaths

    keys = {"name": "bench", "instructions": make_instructions(), "labels": LABELS}
    if variant == "two":
        keys |= {"source": make_titled_docs(rows), "id_column": "row_id", "prompt": TWO_COLUMNS}
    else:  # also runs on the code before prompt templates (--baseline)
        keys |= {"source": make_docs(rows), "id_column": "row_id", "text_column": "text"}
    job, paths, settings = JobConfig(**keys), JobPaths(root), Settings()
    started = time.perf_counter()
    extract_rows(job, paths, settings)
    extracted = time.perf_counter()
    files = build_requests(job, paths, Ledger(paths.ledger), 1, paths.rows, settings, prime=True)
    built = time.perf_counter()
    body = sum(f.body_bytes for f in files)
    print(
        json.dumps(
            {
                "build_wall": built - extracted,
                "extract_wall": extracted - started,
                "files": len(files),
                "body_bytes": body,
            }
        )
    )


def run_once(
    rows: int, workdir: Path, extract: str | None, prompt: str | None = None, code: Path = REPO
) -> dict[str, float]:
    root = workdir / f"build-job-{rows}"
    shutil.rmtree(root, ignore_errors=True)
    command = [sys.executable, "-m", "bench.build_bench", "--child", str(rows), str(root)]
    if extract:
        command += ["--extract-source", extract]
    if prompt:
        command += ["--prompt-variant", prompt]
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=code)
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
    parser.add_argument(
        "--prompt",
        action="store_true",
        help="bench extract + build, one text column vs a two-column prompt template",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="with --prompt: also run the one-column job on the code in this checkout (e.g. "
        "`git worktree add /tmp/base <commit>`, with this bench/ copied in)",
    )
    parser.add_argument(
        "--pilot", type=int, default=0, help="build attempt 1 with a pilot of this many rows"
    )
    parser.add_argument("--child", nargs=2, metavar=("ROWS", "ROOT"), help=argparse.SUPPRESS)
    parser.add_argument("--extract-source", help=argparse.SUPPRESS)
    parser.add_argument("--prompt-variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child and args.prompt_variant:
        prompt_child(int(args.child[0]), Path(args.child[1]), args.prompt_variant)
        return
    if args.prompt:
        compare_prompts(args.rows, args.runs, args.workdir, args.baseline)
        return
    if args.child and args.extract_source:
        extract_child(Path(args.extract_source), Path(args.child[1]))
        return
    if args.child:
        child(int(args.child[0]), Path(args.child[1]))
        return
    if args.pilot:
        os.environ[PILOT_ENV] = str(args.pilot)  # the children read it
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


def compare_prompts(sizes: list[int], runs: int, workdir: Path, baseline: Path | None) -> None:
    """Alternate the variants run by run, so that machine drift hits them alike."""
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cpus, load average "
          f"{os.getloadavg()[0]:.1f} at start; output in {workdir}")  # fmt: skip
    print("| rows | variant | MB out | extract wall | build wall | extract+build | user+sys s "
          "| peak RSS MiB | vs one column: extract+build, build |")  # fmt: skip
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    variants = {"one": ("one", REPO), "two": ("two", REPO)}
    if baseline is not None:
        variants = {"baseline": ("one", baseline), **variants}
    names = {"baseline": f"one column, code in {baseline}", "one": "one column"}
    for rows in sizes:
        make_docs(rows), make_titled_docs(rows)
        results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
        for variant, code in variants.values():  # warm-up: data files, page cache
            run_once(rows, workdir, None, variant, code)
        for _ in range(runs):
            for name, (variant, code) in variants.items():
                results[name].append(run_once(rows, workdir, None, variant, code))
        med = {
            v: {k: statistics.median(r[k] for r in rs) for k in ("extract_wall", "build_wall")}
            | {"cpu": statistics.median(r["user"] + r["sys"] for r in rs)}
            for v, rs in results.items()
        }
        base = med["baseline" if baseline is not None else "one"]
        for name, rs in results.items():
            m = med[name]
            total = m["extract_wall"] + m["build_wall"]
            ratio = total / (base["extract_wall"] + base["build_wall"])
            label = names.get(name, f"prompt {TWO_COLUMNS!r}")
            print(
                f"| {rows:,} | {label} | {rs[0]['body_bytes'] / 1e6:,.1f} "
                f"| {m['extract_wall']:.2f} s | {m['build_wall']:.2f} s | {total:.2f} s "
                f"| {m['cpu']:.2f} | {max(r['peak_mib'] for r in rs):,.0f} "
                f"| {ratio:.2f}x, {m['build_wall'] / base['build_wall']:.2f}x |",
                flush=True,
            )
    print(f"# load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
