"""Bench a whole job, emulator included: every step in its own process, peak memory per step.

    .venv/bin/python bench/job_bench.py --rows 1000000

Rows of ~1,545 characters and a ~3,960-character cached prefix (bench/_data.py), model
claude-sonnet-5, label job, one attempt. The emulator runs as a subprocess on loopback; each
pipeline step (extract, estimate, build, submit, await, download+verify+parse, load) runs in a
fresh `python` process so its peak RSS is its own (os.wait4). Figures go to stdout as a
Markdown table, and the run's JSON to bench/out/job-<rows>.json.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import OUT, make_docs, make_instructions

REPO = Path(__file__).resolve().parents[1]
STEPS = ("imports", "extract", "estimate", "build", "submit", "await", "download", "load")
CHILD = """
import sys, time
from halfrate import pipeline
from halfrate.settings import get_settings
from halfrate.status import read_job
step, name = sys.argv[1], sys.argv[2]
s = get_settings(); job = read_job(s.workdir, name)
if step == "imports": print("baseline: interpreter start + imports + settings")
elif step == "extract": print(pipeline.extract(job, s).valid_rows)
elif step == "build": print(sum(f.n_requests for f in pipeline.build(job, s, 1)))
elif step == "estimate": print(pipeline.estimate(job, s).batch.expected)
elif step == "submit": print(len(pipeline.submit(job, s, 1, "main")))
elif step == "await":
    while not (p := pipeline.check(job, s, 1)).all_ended: time.sleep(s.poll_interval)
    print(p.request_counts)
elif step == "download": print(sum(d.lines for d in pipeline.download(job, s, 1).batches))
elif step == "load": print(len(pipeline.load(job, s, pipeline.extract(job, s)).loaded))
# The process's own peak: ru_maxrss of a child counts its parent's RSS at the fork.
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(f"VmHWM {int(hwm) / 1024:.1f}")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_step(step: str, job: str, env: dict[str, str]) -> dict[str, object]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, step, job], env=env, cwd=REPO, stdout=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    out = proc.stdout.read().decode().strip() if proc.stdout else ""
    if status != 0:
        raise SystemExit(f"step {step} failed ({status})")
    result, _, hwm = out.rpartition("VmHWM ")
    return {
        "step": step,
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mib": float(hwm),
        "result": result.strip(),
    }


LOCAL = ("extract", "build", "download", "load")


def local_overhead(results: list[dict[str, object]]) -> float:
    """The job's own time: extract, build, download (+ verify) and load (+ parse) walls, and
    the submit client's CPU (its wall is the API ingesting the bodies: the API's own time)."""
    walls = sum(float(r["wall_s"]) for r in results if r["step"] in LOCAL)  # type: ignore[arg-type]
    submit = sum(float(r["cpu_s"]) for r in results if r["step"] == "submit")  # type: ignore[arg-type]
    return walls + submit


def emulator_peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--steps", default=",".join(STEPS), help="comma-separated steps to run, in order"
    )
    args = parser.parse_args()
    root = OUT / f"job-{args.rows}"
    subprocess.run(["rm", "-rf", str(root)], check=True)
    root.mkdir(parents=True)
    docs = make_docs(args.rows)
    job = {
        "name": "bench",
        "source": str(docs),
        "id_column": "row_id",
        "model": "claude-sonnet-5",
        "max_tokens": 32,
        "instructions": make_instructions(),
        "labels": ["billing", "bug", "feature_request", "other"],
        "cache_ttl": "1h",
        "prime_cache": False,
        "max_attempts": 1,
    }
    job_file = root / "job.yaml"
    job_file.write_text(yaml.safe_dump(job))
    port = free_port()
    env = dict(os.environ) | {
        "ANTHROPIC_API_KEY": "bench",
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}",
        "HALFRATE_WORKDIR": str(root / "jobs"),
        "HALFRATE_WAREHOUSE": str(root / "warehouse.duckdb"),
        "HALFRATE_POLL_INTERVAL": "1",
    }
    emulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "halfrate_emulator",
            "--port",
            str(port),
            "--data-dir",
            str(root / "emulator"),
            "--processing-seconds",
            "0",
        ],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert emulator.stdout is not None and "listening" in emulator.stdout.readline()
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from halfrate import pipeline; from halfrate.settings import get_settings;"
                "pipeline.prepare(sys.argv[1], None, False, get_settings())",
                str(job_file),
            ],
            env=env,
            cwd=REPO,
            check=True,
        )
        results = [run_step(step, "bench", env) for step in args.steps.split(",")]
        results.append(
            {"step": "emulator (whole run)", "peak_rss_mib": emulator_peak_mib(emulator.pid)}
        )
    finally:
        emulator.terminate()
        emulator.wait(timeout=60)
    total = sum(float(r.get("wall_s", 0)) for r in results)  # type: ignore[arg-type]
    local = local_overhead(results)
    (OUT / f"job-{args.rows}.json").write_text(json.dumps(results, indent=2))
    print(f"| step | wall s | CPU s | peak RSS MiB | result |  ({args.rows:,} rows, {total:.0f} s)")
    print("|---|---:|---:|---:|---|")
    for r in results:
        print(
            f"| {r['step']} | {r.get('wall_s', '')} | {r.get('cpu_s', '')} | {r['peak_rss_mib']} | {r.get('result', '')} |"
        )
    print(f"\nlocal overhead (extract, build, submit's CPU, download, load): {local:.1f} s")


if __name__ == "__main__":
    main()
