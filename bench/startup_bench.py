"""Where a small run's fixed time goes: command -> first step, each step, exit.

    .venv/bin/python bench/startup_bench.py --rows 100 --runs 5

Runs `halfrate run` of a small label job (bench/_data.py rows, claude-haiku-4-5, ~4,200-char
instructions) repeatedly against an emulator subprocess (batches end after 1 s, polled every
second) and halfrate's kept Prefect server, started before the first measured run. Each run
is the real command in a fresh process, instrumented from the inside: wall time (since the
parent launched it) and the process's CPU at the end of the imports, when the server is
found, and at the start and end of every step (the core function its Prefect task calls),
written out just before the process ends. Prints the median of each mark and the whole
process's wall and CPU (os.wait4).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import OUT, make_docs
from script_bench import HALFRATE, REPO, Bench, free_port

ROOT = OUT / "startup-bench"
STEPS = ("prepare", "preflight", "extract", "estimate", "build", "submit", "check", "download",
         "load", "summarize", "user_cancel")  # fmt: skip

# Runs in the measured process before the CLI: wraps the steps, records marks, dumps them.
PROBE = """
import json, os, resource, sys, time
T0 = float(os.environ["BENCH_T0"])
marks = []
def mark(name):
    r = resource.getrusage(resource.RUSAGE_SELF)
    marks.append((name, time.time() - T0, r.ru_utime + r.ru_stime))
mark("interpreter started")
import cli.app, cli.lifetime, cli.server
mark("CLI imported")
import halfrate.pipeline as P
mark("core imported")
found = cli.server.ensure_server
def ensure_server(*a, **k):
    url = found(*a, **k); mark("Prefect imported, server found"); return url
cli.server.ensure_server = ensure_server
def wrap(name):
    step = getattr(P, name)
    def run(*a, **k):
        mark(">" + name)
        try: return step(*a, **k)
        finally: mark("<" + name)
    setattr(P, name, run)
for name in STEPS: wrap(name)
import cli.output as C
printed = C.print_summary
def print_summary(*a, **k):
    mark("flow run ended"); printed(*a, **k); mark("summary printed")
C.print_summary = print_summary
exit_now = cli.lifetime._exit_now
def dump():
    mark("exit")
    with open(os.environ["BENCH_MARKS"], "w") as fh: json.dump(marks, fh)
    exit_now()
cli.lifetime._exit_now = dump
sys.argv[0] = "halfrate"
"""


def measured_run(bench: Bench, rows: int, folder: Path) -> dict[str, object]:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    job = bench.job_file(rows, make_docs(rows), folder)
    marks_file = folder / "marks.json"
    env = bench.env | {
        "PYTHONPATH": str(REPO),
        "PREFECT_HOME": str(ROOT / "prefect-home"),
        "HALFRATE_WORKDIR": str(folder / "jobs"),
        "HALFRATE_WAREHOUSE": str(folder / "warehouse.duckdb"),
        "BENCH_MARKS": str(marks_file),
    }
    code = f"STEPS = {STEPS!r}\n{PROBE}\n{HALFRATE}"
    env["BENCH_T0"] = repr(time.time())
    started = time.perf_counter()
    with (folder / "run.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", code, "run", str(job)], env=env,
                                stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"run failed ({status}); see {folder / 'run.log'}")
    return {
        "wall_s": time.perf_counter() - started,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "marks": json.loads(marks_file.read_text()),
    }


def report(runs: list[dict[str, object]]) -> None:
    names = [m[0] for m in runs[0]["marks"]]  # type: ignore[index]
    print("| mark | wall since the command s | process CPU s | CPU since the previous mark s |")
    print("|---|---:|---:|---:|")
    previous = 0.0
    for i, name in enumerate(names):
        wall = statistics.median(r["marks"][i][1] for r in runs)  # type: ignore[index]
        cpu = statistics.median(r["marks"][i][2] for r in runs)  # type: ignore[index]
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {cpu - previous:+.2f} |")
        previous = cpu
    wall = statistics.median(float(r["wall_s"]) for r in runs)  # type: ignore[arg-type]
    cpu = statistics.median(float(r["cpu_s"]) for r in runs)  # type: ignore[arg-type]
    print(f"| whole process (os.wait4) | {wall:.2f} | {cpu:.2f} | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    port = free_port()
    emulator = subprocess.Popen(
        [sys.executable, "-m", "halfrate_emulator", "--port", str(port),
         "--data-dir", str(ROOT / "emulator"), "--processing-seconds", "1"],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    bench = Bench(f"http://127.0.0.1:{port}", None, root=ROOT)
    try:
        assert emulator.stdout is not None and "listening" in emulator.stdout.readline()
        print(f"kept server started (once): {bench.start_server()}")
        measured_run(bench, args.rows, ROOT / "warm-up")  # a first run: files cached
        load = "/".join(f"{x:.1f}" for x in os.getloadavg())
        runs = [measured_run(bench, args.rows, ROOT / f"run-{i}") for i in range(args.runs)]
        print(f"\n{args.rows} rows, median of {args.runs} runs, load {load}")
        report(runs)
    finally:
        bench.stop_server()
        emulator.terminate()
        emulator.wait(timeout=60)


if __name__ == "__main__":
    main()
