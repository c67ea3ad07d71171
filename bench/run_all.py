"""Run every benchmark at the sizes bench/README.md reports (`make bench`; ~30-60 min idle).

Each script prints its own Markdown table; copy the figures into bench/README.md with the date
and the machine's load. Pass --quick for one run of each at 100k (a smoke run, ~10 min).
"""

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
FULL = [
    ["emulator_bench.py", "--runs", "3"],
    ["build_bench.py", "--rows", "100000", "1000000", "--runs", "3"],
    ["submit_bench.py", "--runs", "3", "--contrast"],
    ["download_bench.py", "--runs", "3"],
    ["load_bench.py", "--sizes", "100000", "1000000", "--runs", "3"],
    ["job_bench.py", "--rows", "1000000"],
    ["script_bench.py", "--rows", "10000", "100000", "--runs", "3"],
    ["startup_bench.py", "--rows", "100", "--runs", "5"],
]
QUICK = [
    ["emulator_bench.py", "--runs", "1"],
    ["build_bench.py", "--rows", "100000", "--runs", "1"],
    ["submit_bench.py", "--runs", "1"],
    ["download_bench.py", "--runs", "1"],
    ["load_bench.py", "--sizes", "100000", "--runs", "1"],
    ["job_bench.py", "--rows", "100000"],
    ["script_bench.py", "--rows", "10000", "--runs", "1"],
    ["startup_bench.py", "--rows", "100", "--runs", "2"],
]


def main() -> int:
    plan = QUICK if "--quick" in sys.argv else FULL
    for script, *args in plan:
        print(f"\n## {script} {' '.join(args)}", flush=True)
        done = subprocess.run([sys.executable, str(BENCH / script), *args], cwd=BENCH.parent)
        if done.returncode:
            print(f"{script} failed ({done.returncode})", file=sys.stderr)
            return done.returncode
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
