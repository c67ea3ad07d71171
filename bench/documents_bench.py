"""Bench: a folder of large PDFs through extract and build (memory must stay bounded).

Synthetic PDFs (fixed seed): one blank page each plus an attachment of random bytes, so the
file is as large as asked and base64 does real work. Each step runs in a fresh child process,
timed from the parent, peak RSS from os.wait4:

- extract: stage the folder (per-file checks with pypdf, base64), then rows.parquet;
- build: the request files, cut on their exact bytes (base64 included).

    .venv/bin/python -m bench.documents_bench                 # 12 PDFs of 20 MB
    .venv/bin/python -m bench.documents_bench --files 40 --mb 5
"""

import argparse
import io
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
REPO = Path(__file__).resolve().parents[1]


def stage(files: int, mb: float) -> Path:
    """A folder of `files` PDFs of about `mb` MB each (cached on disk)."""
    import pypdf

    folder = OUT / f"pdfs-{files}x{mb:g}mb"
    done = folder / ".complete"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20261129)
    for number in range(files):
        writer = pypdf.PdfWriter()
        writer.add_blank_page(width=595, height=842)
        writer.add_attachment("scan.bin", rng.randbytes(int(mb * 1e6)))
        out = io.BytesIO()
        writer.write(out)
        (folder / f"doc-{number:03d}.pdf").write_bytes(out.getvalue())
    done.touch()
    return folder


def _job(folder: Path) -> object:
    from halfrate.config import parse_job

    schema = {"type": "object", "properties": {"title": {"type": "string"}}}
    keys = {"name": "docs", "kind": "extract", "source": str(folder), "schema": schema}
    return parse_job(keys | {"instructions": "Title it.", "prompt": "Title of {path}?"})


def child(step: str, folder: Path, work: Path) -> None:
    from halfrate.build import build_requests
    from halfrate.extract import extract_rows
    from halfrate.ledger import Ledger
    from halfrate.settings import Settings
    from halfrate.workspace import JobPaths

    job, paths = _job(folder), JobPaths(work)
    started = time.perf_counter()
    if step == "extract":
        summary = extract_rows(job, paths, Settings())  # type: ignore[arg-type]
        count = summary.valid_rows
    else:
        ledger = Ledger.create(paths.ledger)
        files = build_requests(job, paths, ledger, 1, paths.rows, Settings(), prime=False)  # type: ignore[arg-type]
        count = sum(f.n_requests for f in files)
        print(f"# {len(files)} request files", file=sys.stderr)
    print(json.dumps({"rows": count, "in_process_s": time.perf_counter() - started}))


def measure(step: str, folder: Path, work: Path) -> dict[str, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.documents_bench", "--child", step, str(folder), str(work)],
        stdout=subprocess.PIPE,
        cwd=REPO,
    )
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{step} failed with status {status}")
    report = json.loads(out)
    return {
        "wall_s": time.perf_counter() - started,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        **report,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=12)
    parser.add_argument("--mb", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument(
        "--child", nargs=3, metavar=("STEP", "FOLDER", "WORK"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    folder = stage(args.files, args.mb)
    total_mb = sum(p.stat().st_size for p in folder.glob("*.pdf")) / 1e6
    print(f"# {args.files} PDFs, {total_mb:,.0f} MB")
    for run in range(args.runs):
        work = OUT / f"documents-work-{run}"
        subprocess.run(["rm", "-rf", str(work)], check=True)
        for step in ("extract", "build"):
            result = measure(step, folder, work)
            print(f"  {step}: " + "  ".join(f"{k}={v:,.2f}" for k, v in result.items()))
        request_mb = sum(p.stat().st_size for p in work.glob("requests/a1/*.jsonl")) / 1e6
        print(f"  request files: {request_mb:,.0f} MB")
        subprocess.run(["rm", "-rf", str(work)], check=True)


if __name__ == "__main__":
    main()
