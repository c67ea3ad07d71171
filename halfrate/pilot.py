"""The pilot: a sample of a job's rows sent first, measured, and projected to the whole job.

The pilot is a phase of the job's own first attempt, not a job of its own: attempt 1's files
are the prime file (the first row alone, when it primes the cache), then `pilot-<NNNN>.jsonl`
(purpose `pilot`: the sampled rows), then `part-<NNNN>.jsonl` (purpose `main`: every other
row). All of them are built at once, from the same rows, with the same custom_ids, and each
row is in exactly one file, so a row the pilot sent is never in a main file: its result is
the job's, recorded in the ledger and the warehouse like any batch's. `halfrate pilot` runs the
job up to the end of the pilot phase and stops; `halfrate run` (or `pilot_rows:` in the job,
which runs the pilot inside the flow) sends the main files. A row the pilot finished is final;
one it left to retry is retried with the others, in attempt 2.

The sample is `n` rows drawn across the source, one at random from each of `n` equal slices
of its rows in order (seeded by the job's fingerprint, so it is the same on every rerun and on
`halfrate recover`), never the first row (the priming request's, whose cache write is not a
typical request's). The size is the job's `pilot_rows` (`halfrate pilot --rows` sets it) when
attempt 1 is built; the files then keep it.
"""

import random
from itertools import pairwise
from pathlib import Path

import polars as pl

from halfrate.config import JobConfig
from halfrate.cost_model import Bracket, CostEstimate
from halfrate.errors import ActionableError
from halfrate.estimate import BudgetExceededError, BudgetUncheckedError, check_budget
from halfrate.kinds.base import SendMode
from halfrate.ledger import Ledger
from halfrate.pilot_report import PilotReport
from halfrate.summary import format_usd

DEFAULT_PILOT_ROWS = 40
PILOT_KEY = "pilot_rows"
"""Ledger meta: the size of the pilot a lost ledger had (`halfrate recover` rebuilds it)."""


class PilotError(RuntimeError, ActionableError):
    """A pilot that cannot run or be measured as asked; the message says what to do."""


class PilotBudgetError(BudgetExceededError):
    """The pilot's projection of the whole job is above `max_cost_usd`: the rest is not sent."""


def planned_size(job: JobConfig, ledger: Ledger) -> int:
    """Rows the pilot samples when attempt 1 is built (0: no pilot): the job's pilot_rows, or
    what `halfrate recover` found the lost ledger's pilot had."""
    recovered = ledger.get_meta(PILOT_KEY)
    return int(recovered) if recovered else (job.pilot_rows or 0)


def has_pilot(ledger: Ledger) -> bool:
    """Whether attempt 1 was built with a pilot phase."""
    return any(r.file.purpose == "pilot" for r in ledger.records(attempt=1))


def plan(job: JobConfig, ledger: Ledger, rows: int | None) -> JobConfig:
    """The job with the pilot's size set (`halfrate pilot --rows`, else its pilot_rows, else
    DEFAULT_PILOT_ROWS); once attempt 1 is built, its pilot stays what it was.

    Raises PilotError when attempt 1 was built without a pilot: its rows are already in main
    files (a run started), and a pilot now could only send them twice.
    """
    if rows is not None and rows < 1:
        raise PilotError(f"--rows {rows}: a pilot needs at least one row")
    built = ledger.records(attempt=1)
    if built and not has_pilot(ledger):
        raise PilotError(
            f"job {job.name!r} was started without a pilot (its first attempt is built: "
            f"{len(built)} request file(s)), so a pilot now would send rows twice. Run a "
            "pilot before the job's first run: `halfrate pilot --restart`, or a new job name."
        )
    if built:
        return job  # its pilot is built: the same rows, whatever is asked now
    return job.model_copy(update={"pilot_rows": rows or job.pilot_rows or DEFAULT_PILOT_ROWS})


def sample_row_ids(rows: Path, n: int, seed: str) -> list[str]:
    """`n` row ids spread across the rows (never the first), the same for the same seed.

    The rows after the first are cut into `n` slices of (nearly) equal length, in source
    order, and one row is drawn at random from each.
    """
    ids = pl.scan_parquet(rows).select("row_id").unique(maintain_order=True).collect()
    candidates = ids.height - 1
    n = min(n, candidates)
    if n <= 0:
        return []
    rng = random.Random(f"halfrate-pilot:{seed}")
    bounds = [k * candidates // n for k in range(n + 1)]
    picks = [1 + lo + rng.randrange(hi - lo) for lo, hi in pairwise(bounds)]
    return [str(v) for v in ids["row_id"].gather(picks).to_list()]


def sent_first_share(job: JobConfig, ledger: Ledger, rows: Path) -> float | None:
    """The share of the job the prime and pilot batches send, when it has (or will have) a
    pilot; None without one."""
    built = ledger.records(attempt=1)
    if built:
        files = [r.file for r in built if r.file.parent is None]  # not a 413's halves
        first = sum(f.n_requests for f in files if f.purpose in ("prime", "pilot"))
        total = sum(f.n_requests for f in files)
        return first / max(total, 1) if has_pilot(ledger) else None
    size = planned_size(job, ledger)
    return pilot_share(rows, size) if size else None


def pilot_share(rows: Path, n: int) -> float:
    """The share of the job's rows the prime and pilot batches send."""
    total = int(pl.scan_parquet(rows).select(pl.col("row_id").n_unique()).collect().item())
    return min(1.0, (min(n, max(total - 1, 0)) + 1) / max(total, 1))


def check_pilot_budget(job: JobConfig, e: CostEstimate, share: float) -> None:
    """Before a pilot is sent: the static estimate of its own share must fit the budget (the
    whole job is checked against the pilot's projection instead, before the rest is sent)."""
    cap = job.max_cost_usd
    if cap is None:
        return

    def part(b: Bracket) -> Bracket:
        low, expected, high = (
            None if v is None else v * share for v in (b.low, b.expected, b.high)
        )
        return Bracket(low=low, expected=expected, high=high)

    scaled = e.model_copy(update={"batch": part(e.batch), "realtime": part(e.realtime)})
    try:
        check_budget(job, scaled)
    except BudgetExceededError:
        realtime = job.mode is SendMode.realtime
        expected = (scaled.realtime if realtime else scaled.batch).expected
        raise BudgetExceededError(
            f"job {job.name!r}: even its pilot ({share:.1%} of the rows) is expected to cost "
            f"{format_usd(expected, versus=cap)} at {_prices(realtime)}, above max_cost_usd "
            f"{format_usd(cap, versus=expected)}; nothing was submitted. Raise max_cost_usd, "
            "or pilot fewer rows (pilot_rows, --rows)."
        ) from None


def _prices(realtime: bool) -> str:
    return "real-time prices (mode: realtime)" if realtime else "batch prices"


def check_projection(job: JobConfig, report: PilotReport) -> None:
    """Before the main batches: the pilot's projection of the whole job must fit the budget."""
    problem = projection_over_budget(report, job.max_cost_usd)
    if problem is not None:
        raise problem


def projection_over_budget(
    report: PilotReport, cap: float | None
) -> PilotBudgetError | BudgetUncheckedError | None:
    """Why the rest of the job will not be sent under the budget `cap` (None: it fits)."""
    if cap is None:
        return None
    expected = report.projected.expected
    name = report.job_name
    kept = (
        f"The pilot's {report.pilot.rows:,} rows are done and kept (a rerun never sends them again)"
    )
    if expected is None:
        return BudgetUncheckedError(
            f"job {name!r}: max_cost_usd is {format_usd(cap)} but the pilot's projection "
            f"cannot be priced ({'; '.join(report.problems)}); the main batches were not "
            f"sent. {kept}. Add the missing price to halfrate/prices.csv, or remove "
            "max_cost_usd and rerun."
        )
    if expected <= cap:
        return None
    p = report.projected
    return PilotBudgetError(
        f"job {name!r}: the pilot projects {format_usd(expected, versus=cap)} for the "
        f"whole job at {_prices(report.prices == 'realtime')} (90% interval "
        f"{format_usd(p.low)} – "
        f"{format_usd(p.high)}; the static estimate said "
        f"{format_usd(report.static.expected if report.static else None)}), above "
        f"max_cost_usd {format_usd(cap, versus=expected)}; the main batches "
        f"({report.remaining_requests:,} requests) were not sent. {kept}. Raise "
        "max_cost_usd (it is not part of the job's identity) and rerun to send the rest."
    )


def report_lines(report: PilotReport) -> list[tuple[str, str]]:
    """The report as (what, figure) pairs, for the CLI's table and the Prefect artifact."""
    m, p, s = report.pilot, report.projected, report.static

    def tokens(value: float | None) -> str:
        return "n/a" if value is None else f"{value:,.1f}"

    def bracket(expected: float | None, low: float | None, high: float | None) -> str:
        return f"{format_usd(expected)} ({format_usd(low)} – {format_usd(high)})"

    rate = "n/a" if m.cache_hit_rate is None else f"{m.cache_hit_rate:.1%}"
    return [
        ("pilot rows", f"{m.rows:,} ({m.requests:,} requests, {m.billed_requests:,} billed)"),
        ("output tokens per row", f"mean {tokens(m.output_tokens_mean)}, p95 "
         f"{tokens(m.output_tokens_p95)}"),
        ("input tokens per row", f"mean {tokens(m.input_tokens_mean)} (cache reads and "
         "writes included)"),
        ("cache hit rate", rate),
        ("invalid output rate", f"{m.invalid_output_rate:.1%} (asked again: "
         f"{m.retry_rate:.1%})"),
        ("cost per row", format_usd(m.cost_per_row_usd)),
        ("paid so far", format_usd(report.known_usd) + " (the pilot and any priming batch)"),
        ("left to send", f"{report.remaining_requests:,} requests"),
        ("projected job cost", bracket(p.expected, p.low, p.high) + ", 90% interval"),
        ("static estimate", bracket(s.expected, s.low, s.high) if s else "n/a"),
        *_cold(report),
        *(("not projected", problem) for problem in report.problems),
    ]  # fmt: skip


def _cold(report: PilotReport) -> list[tuple[str, str]]:
    if report.cold_cache_usd is None:
        return []
    return [
        (
            f"sent after {report.cache_ttl}",
            f"{format_usd(report.cold_cache_usd)}: the projection assumes the rest reads the "
            f"cache the pilot's batches warmed; sent once its {report.cache_ttl} TTL ran out, "
            "every remaining request writes the prefix again",
        )
    ]


def render_report(report: PilotReport) -> str:
    """The report as Markdown (the Prefect artifact)."""
    lines = [
        f"# Pilot of `{report.job_name}` ({report.model})",
        "",
        f"All at {_prices(report.prices == 'realtime')}; the whole job's cost is projected "
        "from what the pilot's rows "
        "really used, next to the static estimate made before anything was sent.",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {what} | {_cell(figure)} |" for what, figure in report_lines(report)]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
