"""Side by side: `halfrate run` against a plain SDK script, same rows, same emulator, alternating.

    .venv/bin/python bench/script_bench.py --rows 10000 100000 --runs 3
    .venv/bin/python bench/script_bench.py --rows 100 --runs 5 --baseline /tmp/base   # + old code

The rows are `bench/_data.py`'s (fixed seed, ~1,545 chars each), labelled with one of five
labels by claude-haiku-4-5 under ~4,200 characters of cached instructions. The yardstick is
`bench/plain_sdk_script.py` (create batches of 10,000 with the SDK, poll, iterate the results,
insert into DuckDB). Both run as fresh processes against one emulator subprocess (batches end
after 1 s, both poll every second), each into a fresh job folder and warehouse, in alternating
order. CPU (user+sys) and peak RSS come from os.wait4, which includes the children a process
waited for (the temporary Prefect server of the code before issue 10). halfrate reports to its
kept local Prefect server, started once before the runs (its start is reported apart); the
CPU that server spends during each run is read from /proc and shown beside the process's.
`--baseline DIR` also runs the halfrate code exported to DIR (e.g. `git worktree add DIR main`),
which starts a temporary server per run. The emulator's own CPU is the API's, not counted.
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

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import OUT, make_docs, make_instructions

REPO = Path(__file__).resolve().parents[1]
ROOT = OUT / "script-bench"
LABELS = ["billing", "bug", "feature_request", "account", "other"]
INSTRUCTIONS_CHARS = 4200
# The `halfrate` command of the code on PYTHONPATH (`main` since issue 10, `app` before).
HALFRATE = (
    "import sys; from cli import app as m; sys.argv[0] = 'halfrate'; "
    "sys.exit(getattr(m, 'main', m.app)())"
)
TICK = os.sysconf("SC_CLK_TCK")


def instructions() -> str:
    text = make_instructions()
    return (text + "\n" + make_instructions(seed=12))[:INSTRUCTIONS_CHARS]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(emulator_url: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "HALFRATE_", "PREFECT_"))
    }
    return env | {
        "ANTHROPIC_API_KEY": "bench",
        "ANTHROPIC_BASE_URL": emulator_url,
        "HALFRATE_POLL_INTERVAL": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }


def cpu_of(pid: int | None) -> float:
    """User+sys CPU seconds a running process has used (0 when there is none)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def measure(
    args: list[str], env: dict[str, str], log: Path, server_pid: int | None
) -> dict[str, float]:
    server_before = cpu_of(server_pid)
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, cwd=log.parent, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{args[:3]} failed ({status}); see {log}")
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "server_cpu_s": round(cpu_of(server_pid) - server_before, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
    }


class Bench:
    def __init__(self, emulator_url: str, baseline: Path | None, root: Path = ROOT) -> None:
        self.env = base_env(emulator_url)
        self.root = root
        self.instructions = root / "instructions.txt"
        self.instructions.write_text(instructions())
        self.variants: dict[str, tuple[Path, Path] | str] = {
            "script": "executemany",
            "script-arrow": "arrow",
        }
        self.variants["halfrate"] = (REPO, root / "prefect-home")
        if baseline is not None:
            self.variants["before"] = (baseline, root / "prefect-home-before")
        self.server_pid: int | None = None

    def start_server(self) -> dict[str, float]:
        env = self.env | {"PYTHONPATH": str(REPO), "PREFECT_HOME": str(self.root / "prefect-home")}
        log = self.root / "server-start.log"
        result = measure([sys.executable, "-c", HALFRATE, "server", "start"], env, log, None)
        state = json.loads((self.root / "prefect-home" / "halfrate-server.json").read_text())
        self.server_pid = int(state["pid"])
        return result

    def stop_server(self) -> None:
        env = self.env | {"PYTHONPATH": str(REPO), "PREFECT_HOME": str(self.root / "prefect-home")}
        subprocess.run([sys.executable, "-c", HALFRATE, "server", "stop"], env=env, check=False)

    def run(self, variant: str, rows: int, folder: Path) -> dict[str, float]:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        docs = make_docs(rows)
        code = self.variants[variant]
        if isinstance(code, str):
            args = [sys.executable, str(REPO / "bench" / "plain_sdk_script.py"), str(docs),
                    str(folder / "warehouse.duckdb"), str(self.instructions), ",".join(LABELS),
                    code]  # fmt: skip
            return measure(args, self.env, folder / "run.log", None)
        source, home = code
        job = self.job_file(rows, docs, folder)
        env = self.env | {
            "PYTHONPATH": str(source),
            "PREFECT_HOME": str(home),
            "HALFRATE_WORKDIR": str(folder / "jobs"),
            "HALFRATE_WAREHOUSE": str(folder / "warehouse.duckdb"),
        }
        args = [sys.executable, "-c", HALFRATE, "run", str(job)]
        pid = self.server_pid if variant == "halfrate" else None
        return measure(args, env, folder / "run.log", pid)

    def job_file(self, rows: int, docs: Path, folder: Path) -> Path:
        job = {
            "name": f"sbs-{rows}",
            "kind": "label",
            "source": str(docs),
            "id_column": "row_id",
            "text_column": "text",
            "model": "claude-haiku-4-5",
            "max_tokens": 32,
            "labels": LABELS,
            "instructions": self.instructions.read_text(),
            "cache_ttl": "1h",
        }
        path = folder / "job.yaml"
        path.write_text(yaml.safe_dump(job))
        return path


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def report(rows: int, results: dict[str, list[dict[str, float]]], loads: tuple[str, str]) -> None:
    def med(variant: str, key: str) -> float:
        return statistics.median(r[key] for r in results[variant])

    print(f"\n### {rows:,} rows, {len(results['script'])} runs each, load {loads[0]} -> {loads[1]}")
    print(
        "| variant | wall s (min-max) | CPU s | + server CPU s | peak RSS MiB | CPU ratio | with server | wall ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for variant, runs in results.items():
        walls = [r["wall_s"] for r in runs]
        cpu, server = med(variant, "cpu_s"), med(variant, "server_cpu_s")
        print(
            f"| {variant} | {med(variant, 'wall_s'):.1f} ({min(walls):.1f}-{max(walls):.1f}) | "
            f"{cpu:.1f} | {server:.1f} | {med(variant, 'peak_rss_mib'):.0f} | "
            f"{cpu / med('script', 'cpu_s'):.2f} | {(cpu + server) / med('script', 'cpu_s'):.2f} | "
            f"{med(variant, 'wall_s') / med('script', 'wall_s'):.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="older halfrate code to run as well")
    args = parser.parse_args()
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    port = free_port()
    emulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "halfrate_emulator",
            "--port",
            str(port),
            "--data-dir",
            str(ROOT / "emulator"),
            "--processing-seconds",
            "1",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    bench = Bench(f"http://127.0.0.1:{port}", args.baseline)
    try:
        assert emulator.stdout is not None and "listening" in emulator.stdout.readline()
        print(f"kept server started (once): {bench.start_server()}")
        for variant in bench.variants:  # warm-up: databases made, files cached
            bench.run(variant, 100, ROOT / f"warm-{variant}")
        for rows in args.rows:
            before = load()
            results: dict[str, list[dict[str, float]]] = {v: [] for v in bench.variants}
            names = list(bench.variants)
            for number in range(args.runs):
                order = names[number % len(names) :] + names[: number % len(names)]
                for variant in order:
                    result = bench.run(variant, rows, ROOT / f"{variant}-{rows}")
                    results[variant].append(result)
                    print(f"{rows} {variant} #{number + 1}: {result}", flush=True)
            report(rows, results, (before, load()))
            (OUT / f"script-bench-{rows}.json").write_text(json.dumps(results, indent=2))
    finally:
        bench.stop_server()
        emulator.terminate()
        emulator.wait(timeout=60)


if __name__ == "__main__":
    main()
