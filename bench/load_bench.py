"""Bench: parse + load of batch results into the DuckDB warehouse (halfrate.results + halfrate.load).

Synthetic results (fixed seed): ~1,100 B per line, ~600-char texts (40 % a JSON label object
with a reason, 60 % prose: invalid outputs for a label job, so validation does real work),
2 % errored (overloaded_error / api_error), shuffled, with realistic usage and cache fields.
Lines are cut into batch files of at most 100,000 (the API's per-batch limit), each with its
request index and ledger record, exactly as a job stages them.

Each measured run is a fresh child process (timed from the parent; peak RSS from os.wait4):
connect + ensure_schema + load_job + for every batch load_batch (which parses the raw results
straight into the warehouse since issue 10; before it, parse_results to a Parquet file then
load_batch), into a new DuckDB file (CHECKPOINTed on close).

    .venv/bin/python -m bench.load_bench              # 100k (5 runs + warm-up) and 1M (2 runs)
    .venv/bin/python -m bench.load_bench --sizes 100000 --runs 3
    .venv/bin/python -m bench.load_bench --outputs labels   # every output {"label": ...}
    .venv/bin/python -m bench.load_bench --outputs extract  # an extract job's 8-field records
    .venv/bin/python -m bench.load_bench --outputs extract-full  # ... whose schema needs Python
    .venv/bin/python -m bench.load_bench --baseline /tmp/base   # and older code, alternately
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from bench._data import label_job as JobConfig
from halfrate.ledger import BatchStatus, Ledger, RequestFile
from halfrate.workspace import JobPaths

OUT = Path(__file__).resolve().parent / "out"
BATCH_LINES = 100_000
REPO = Path(__file__).resolve().parents[1]
LABELS = ["billing", "card", "delivery", "account", "refund", "other"]
_TEXT = (
    "the order arrived late and the box was damaged so I would like a refund or a replacement "
    "please check my account because the invoice shows a charge twice this month our team "
    "needs access to the shared drive before the meeting on Friday Zoë José Søren Dvořák"
)
WORDS = _TEXT.split(" ")


CATEGORIES = ["personal", "mailing_list", "newsletter", "commercial", "spam", "other"]
EXTRACT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "sender_name", "sender_address", "subject", "date", "list_id", "is_reply", "summary",
        "category",
    ],
    "properties": {
        "sender_name": {"type": ["string", "null"]},
        "sender_address": {"type": "string"},
        "subject": {"type": "string"},
        "date": {"type": "string"},
        "list_id": {"type": ["string", "null"]},
        "is_reply": {"type": "boolean"},
        "summary": {"type": "string"},
        "category": {"type": "string", "enum": CATEGORIES},
    },
}  # fmt: skip
"""The emails demo's record: every keyword one the SQL checks cover."""
FULL_KEYWORDS = {
    "sender_address": {"format": "email"},
    "date": {"format": "date-time"},
    "summary": {"maxLength": 300},
}
"""extract-full adds these, which only the Python validation checks."""


def _job(root: Path) -> Any:
    outputs = (root / "outputs.txt").read_text() if (root / "outputs.txt").exists() else "mixed"
    if outputs.startswith("extract"):
        from halfrate.kinds.extract import ExtractJob

        schema = json.loads(json.dumps(EXTRACT_SCHEMA))
        if outputs == "extract-full":
            for name, extra in FULL_KEYWORDS.items():
                schema["properties"][name] |= extra
        return ExtractJob(
            name="bench",
            source=root / "source.parquet",
            instructions="Extract the record.",
            schema=schema,
            model="claude-sonnet-5",
        )
    return JobConfig(
        name="bench",
        source=root / "source.parquet",
        instructions="Label the message.",
        labels=LABELS,
        gold_column="intent",
        model="claude-sonnet-5",
    )


def _prose(rng: random.Random, chars: int) -> str:
    out: list[str] = []
    size = 0
    while size < chars:
        sentence = " ".join(rng.choices(WORDS, k=rng.randint(6, 18))).capitalize()
        sentence += rng.choice([". ", '! "Quoted" ', "?\n"])
        out.append(sentence)
        size += len(sentence)
    return "".join(out)[:chars]


def _line(rng: random.Random, custom_id: str, outputs: str = "mixed") -> bytes:
    if rng.random() < 0.02:
        kind = rng.choice(["overloaded_error", "api_error"])
        error = {
            "type": "error",
            "error": {"type": kind, "message": "Overloaded"},
            "request_id": None,
        }
        return orjson.dumps({"custom_id": custom_id, "result": {"type": "errored", "error": error}})
    if outputs == "labels":  # what a label job gets back: {"label": ...}, 5 % not a label
        label = rng.choice(LABELS) if rng.random() < 0.95 else "unknown"
        text = orjson.dumps({"label": label}).decode()
    elif outputs.startswith("extract"):  # an e-mail's record, 5 % with a category not allowed
        text = orjson.dumps(_record(rng)).decode()
    elif rng.random() < 0.4:
        text = orjson.dumps({"label": rng.choice(LABELS), "reason": _prose(rng, 560)}).decode()
    else:
        text = _prose(rng, 600)
    read = rng.random() < 0.9
    usage = {
        "input_tokens": rng.randint(300, 500),
        "output_tokens": rng.randint(100, 200),
        "cache_creation_input_tokens": 0 if read else 1010,
        "cache_read_input_tokens": 1010 if read else 0,
        "cache_creation": {
            "ephemeral_5m_input_tokens": 0,
            "ephemeral_1h_input_tokens": 0 if read else 1010,
        },
        "service_tier": "batch",
    }
    message = {
        "id": f"msg_01{rng.getrandbits(96):024x}",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-5",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }
    return orjson.dumps(
        {"custom_id": custom_id, "result": {"type": "succeeded", "message": message}}
    )


def _record(rng: random.Random) -> dict[str, Any]:
    name = " ".join(rng.choices(WORDS, k=2)).title()
    return {
        "sender_name": name if rng.random() < 0.8 else None,
        "sender_address": f"{name.split()[0].lower()}{rng.randint(1, 999)}@example.org",
        "subject": _prose(rng, rng.randint(20, 70)).strip(),
        "date": f"2002-08-{rng.randint(10, 28)}T{rng.randint(10, 23)}:{rng.randint(10, 59)}:00Z",
        "list_id": "fork.xent.com" if rng.random() < 0.35 else None,
        "is_reply": rng.random() < 0.3,
        "summary": _prose(rng, rng.randint(80, 200)).strip(),
        "category": rng.choice(CATEGORIES) if rng.random() < 0.95 else "unknown",
    }


def stage(n: int, outputs: str = "mixed") -> Path:
    """A job folder with n rows and ceil(n / 100,000) downloaded batches (cached on disk)."""
    root = OUT / (f"load-{n}" if outputs == "mixed" else f"load-{outputs}-{n}")
    done = root / ".complete"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    paths = JobPaths(root / "jobs" / "bench")
    paths.rows.parent.mkdir(parents=True)
    (root / "outputs.txt").write_text(outputs)
    rng = random.Random(20261124)
    row_ids = [f"doc-{i:07d}" for i in range(n)]
    pq.write_table(
        pa.table(
            {
                "row_number": pa.array(range(1, n + 1), pa.uint32()),
                "row_id": row_ids,
                "text": ["x"] * n,
                "gold": [rng.choice(LABELS) for _ in row_ids],
            }
        ),
        paths.rows,
    )
    pq.write_table(
        pa.table(
            {
                "row_number": pa.array([], pa.uint32()),
                "row_id": pa.array([], pa.string()),
                "reason": pa.array([], pa.string()),
            }
        ),
        paths.quarantine,
    )
    ledger = Ledger.create(paths.ledger)
    for part, start in enumerate(range(0, n, BATCH_LINES), start=1):
        ids = row_ids[start : start + BATCH_LINES]
        custom_ids = [f"a1_{r}" for r in ids]
        relative = f"requests/a1/part-{part:04d}.jsonl"
        (root / "jobs" / "bench" / relative).parent.mkdir(parents=True, exist_ok=True)
        (paths.root / relative).write_bytes(b"")  # the request bodies are not needed here
        pq.write_table(
            pa.table(
                {
                    "custom_id": custom_ids,
                    "row_id": ids,
                    "attempt": pa.array([1] * len(ids), pa.uint8()),
                }
            ),
            paths.index_file(relative),
        )
        ledger.add_request_files(
            [RequestFile(relative, 1, part, "main", len(ids), 0, f"bench{part}")]
        )
        batch_id = f"msgbatch_bench{part:04d}"
        ledger.record_intent(relative)
        ledger.record_batch(
            relative,
            {
                "id": batch_id,
                "created_at": "2026-11-20T10:00:00Z",
                "expires_at": "2026-11-21T10:00:00Z",
                "processing_status": "ended",
                "request_counts": {"processing": 0},
            },
        )
        ledger.set_status(batch_id, BatchStatus.downloaded)
        lines = [_line(rng, c, outputs) for c in custom_ids]
        rng.shuffle(lines)
        raw = paths.results_file(batch_id)
        raw.parent.mkdir(parents=True, exist_ok=True)
        raw.write_bytes(b"\n".join(lines) + b"\n")
    done.touch()
    return root


def child(root: Path, db: Path) -> None:
    """The measured work, in its own process: parse + load every batch of the staged job."""
    from halfrate.load import load_batch, load_job
    from halfrate.warehouse import connect, ensure_schema

    paths = JobPaths(root / "jobs" / "bench")
    job = _job(root)
    ledger = Ledger.create(paths.ledger)
    rows = pq.read_metadata(paths.rows).num_rows

    class Counts:
        valid_rows = rows
        quarantined_rows = 0

    timings = {"parse": 0.0, "load": 0.0}
    started = time.perf_counter()
    con = connect(db)
    ensure_schema(con)
    load_job(con, job, paths, ledger, Counts())
    timings["load_job"] = time.perf_counter() - started
    loaded = 0
    for record in ledger.records():
        assert record.batch_id is not None
        t0 = time.perf_counter()
        if hasattr(paths, "parsed_file"):  # the code before issue 10 parsed to a file first
            from halfrate.results import parse_results  # type: ignore[attr-defined]

            parse_results(
                paths.results_file(record.batch_id),
                paths.parsed_file(record.batch_id),
                job,
                record.batch_id,
            )
        t1 = time.perf_counter()
        loaded += load_batch(con, job, paths, record)  # since issue 10: parse + load, fused
        timings["parse"] += t1 - t0
        timings["load"] += time.perf_counter() - t1
    con.close()  # checkpoints the file
    timings["total_in_process"] = time.perf_counter() - started
    print(json.dumps({"results": loaded, **timings}))


YARDSTICK_SQL = """
insert into results_flat
select
    custom_id,
    result.type as result_type,
    result.message.stop_reason as stop_reason,
    result.message.content[1].text as text,
    result.message.usage.input_tokens as input_tokens,
    result.message.usage.output_tokens as output_tokens,
    result.message.usage.cache_creation_input_tokens as cache_creation_input_tokens,
    result.message.usage.cache_read_input_tokens as cache_read_input_tokens,
    result.error.error.type as error_type,
    result.error.error.message as error_message
from read_json(
    $raw,
    format = 'newline_delimited',
    columns = {
        'custom_id': 'varchar',
        'result': 'struct(type varchar, message struct(stop_reason varchar,
            content struct(type varchar, text varchar)[], usage struct(input_tokens bigint,
            output_tokens bigint, cache_creation_input_tokens bigint,
            cache_read_input_tokens bigint)), error struct(error struct(type varchar,
            message varchar)))'
    }
)
"""


def yardstick(root: Path, db: Path) -> None:
    """perf-baseline.md C's "DuckDB read_json -> DuckDB file" (10 flat columns), per batch file."""
    import duckdb

    started = time.perf_counter()
    con = duckdb.connect(str(db))
    con.execute(
        "create table results_flat (custom_id varchar, result_type varchar, stop_reason varchar,"
        " text varchar, input_tokens bigint, output_tokens bigint,"
        " cache_creation_input_tokens bigint, cache_read_input_tokens bigint,"
        " error_type varchar, error_message varchar)"
    )
    for raw in sorted(root.glob("jobs/bench/results/*.jsonl")):
        con.execute(YARDSTICK_SQL, {"raw": str(raw)})
    (loaded,) = con.execute("select count(*) from results_flat").fetchone() or (0,)
    con.close()
    print(json.dumps({"results": loaded, "total_in_process": time.perf_counter() - started}))


def measure(root: Path, n: int, mode: str = "--child", code: Path = REPO) -> dict[str, float]:
    paths = JobPaths(root / "jobs" / "bench")
    for staged in paths.root.glob("results/*.parquet"):  # parsed (before), outcomes (since)
        staged.unlink()
    db = root / "warehouse.duckdb"
    for leftover in (db, db.with_suffix(".duckdb.wal")):
        leftover.unlink(missing_ok=True)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.load_bench", mode, str(root), str(db)],
        stdout=subprocess.PIPE,
        cwd=code,
    )
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"child failed with status {status}")
    report = json.loads(out)
    assert report["results"] == n, report
    if mode == "--yardstick":
        report = {"results": n}
    return {
        "wall_s": wall,
        "lines_per_s": n / wall,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "db_mb": db.stat().st_size / 1e6,
        **{f"{k}_s": v for k, v in report.items() if k != "results"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--runs", type=int, default=0, help="runs per size (default 5 at <=100k, else 2)"
    )
    parser.add_argument(
        "--outputs",
        choices=["mixed", "labels", "extract", "extract-full"],
        default="mixed",
        help="mixed: 40%% JSON label objects with a long reason, 60%% prose (the figures below); "
        'labels: every output {"label": ...} as a label job gets them, 5%% not a label; '
        "extract: an extract job's 8-field records into its typed table, 5%% invalid; "
        "extract-full: the same with format/maxLength (validated in Python too)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="also measure the code in this checkout on the same data, alternately "
        "(e.g. `git worktree add /tmp/base <commit>`)",
    )
    parser.add_argument("--child", nargs=2, metavar=("ROOT", "DB"), help=argparse.SUPPRESS)
    parser.add_argument("--yardstick", nargs=2, metavar=("ROOT", "DB"), help=argparse.SUPPRESS)
    parser.add_argument("--stage", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]))
        return
    if args.yardstick:
        yardstick(Path(args.yardstick[0]), Path(args.yardstick[1]))
        return
    if args.stage:
        stage(args.stage, args.outputs)
        return
    for n in args.sizes:
        t0 = time.perf_counter()
        # staging runs in its own process: a forked child inherits the parent's RSS, which
        # would otherwise show up in the measured child's peak
        subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.load_bench",
                "--stage",
                str(n),
                "--outputs",
                args.outputs,
            ],
            check=True,
        )
        root = stage(n, args.outputs)
        raw_mb = sum(p.stat().st_size for p in root.glob("jobs/bench/results/*.jsonl")) / 1e6
        print(
            f"# {n:,} results, {raw_mb:,.1f} MB of JSONL (staged in {time.perf_counter() - t0:.1f} s)"
        )
        runs = args.runs or (5 if n <= 100_000 else 2)
        if n <= 100_000:
            measure(root, n)  # warm-up
        results, ratios, before = [], [], []
        for _ in range(runs):  # ours and the yardstick alternately: machine drift cancels
            ours = measure(root, n)
            base = measure(root, n, "--yardstick")
            results.append(ours)
            ratios.append(ours["wall_s"] / base["wall_s"])
            if args.baseline is not None:
                old = measure(root, n, code=args.baseline)
                before.append(old)
                print("  baseline: " + "  ".join(f"{k}={v:,.2f}" for k, v in old.items()))
            print("  " + "  ".join(f"{k}={v:,.2f}" for k, v in ours.items()))
            print(
                f"  yardstick: wall_s={base['wall_s']:.2f}  cpu_s={base['cpu_s']:.2f}  "
                f"peak_rss_mib={base['peak_rss_mib']:,.0f}  lines_per_s={base['lines_per_s']:,.0f}"
            )
        med = {k: statistics.median(r[k] for r in results) for k in results[0]}
        print(
            f"  median: wall {med['wall_s']:.2f} s, {med['lines_per_s']:,.0f} lines/s, "
            f"cpu {med['cpu_s']:.2f} s, {n / med['cpu_s']:,.0f} lines per cpu-s, "
            f"peak {med['peak_rss_mib']:,.0f} MiB, parse {med['parse_s']:.2f} s, "
            f"load {med['load_s']:.2f} s, load_job {med['load_job_s']:.2f} s, db {med['db_mb']:,.0f} MB; "
            f"paired wall ratio vs yardstick {statistics.median(ratios):.2f}"
        )
        if before:
            old = {k: statistics.median(r[k] for r in before) for k in before[0]}
            print(
                f"  baseline median: wall {old['wall_s']:.2f} s, cpu {old['cpu_s']:.2f} s, "
                f"peak {old['peak_rss_mib']:,.0f} MiB, parse {old['parse_s']:.2f} s, "
                f"load {old['load_s']:.2f} s; ours/baseline: wall "
                f"{med['wall_s'] / old['wall_s']:.2f}x, cpu {med['cpu_s'] / old['cpu_s']:.2f}x, "
                f"parse {med['parse_s'] / old['parse_s']:.2f}x, load {med['load_s'] / old['load_s']:.2f}x"
            )


if __name__ == "__main__":
    main()
