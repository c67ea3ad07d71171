"""How fast `halfrate run` refuses a job that cannot run (issue 8 item 3: under 3 s).

Each case is a fresh `halfrate run BAD.yaml` process, timed end to end (interpreter start to
exit) from outside, `--runs` times; the table shows the median and the worst wall time, the
exit code, and the first line the user reads. No Prefect server, emulator or network is used:
the refusals must come before any of them.

    .venv/bin/python bench/refusal_bench.py --runs 5
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
HALFRATE = Path(sys.executable).parent / "halfrate"
DEMO = yaml.safe_load((REPO / "data" / "samples" / "intents.yaml").read_text(encoding="utf-8"))
CASES: dict[str, dict[str, object]] = {
    "unknown key": {"colour": "blue"},
    "wrong type": {"max_tokens": "lots"},
    "missing source": {"source": "nope.csv"},
    "bad kind": {"kind": "summarize"},
    "missing column": {"text_column": "body"},
    "no API key": {},
}


def one(job: Path, env: dict[str, str]) -> tuple[float, int, str]:
    start = time.perf_counter()
    done = subprocess.run([str(HALFRATE), "run", str(job)], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    first = (done.stderr or done.stdout).strip().splitlines()[0][:70].replace("`", "'")
    return wall, done.returncode, first


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "PREFECT_"))}
        env |= {"HALFRATE_WORKDIR": str(folder / "jobs"), "HALFRATE_WAREHOUSE": str(folder / "w")}
        print("| bad input | median wall | worst | exit | first line |")
        print("|---|---:|---:|---:|---|")
        for name, keys in CASES.items():
            job = folder / f"{name.replace(' ', '-')}.yaml"
            source = str(REPO / "data" / "samples" / "intents.csv")
            job.write_text(yaml.safe_dump(DEMO | {"source": source} | keys))
            results = [one(job, env) for _ in range(runs)]
            walls = [r[0] for r in results]
            _, code, first = results[-1]
            print(
                f"| {name} | {statistics.median(walls):.2f} s | {max(walls):.2f} s | {code} "
                f"| `{first}` |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
