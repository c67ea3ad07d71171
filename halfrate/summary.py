"""A job's outcome in one typed record: rows, states, tokens, cost, savings and what its kind adds."""

from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from pathlib import Path

import duckdb
from pydantic import BaseModel, ConfigDict

from halfrate.config import JobConfig
from halfrate.kinds import kind_of
from halfrate.kinds.base import SummaryDetail
from halfrate.sql import load_sql

FAILURE_ROWS = 200
MAX_USD_PLACES = 12  # the warehouse keeps money to 12 decimals


class FailureRow(BaseModel):
    """A row that did not succeed, and why. `row_number` (1-based, in source order) identifies
    it even when its id is missing; for a folder source the id is the file's path."""

    row_number: int | None
    row_id: str | None
    final_state: str
    reason: str | None
    attempts: int | None


NOT_FINISHED = frozenset({"pending"})
"""Final states of rows a later run (or `halfrate load`) still settles."""


class Verdict(StrEnum):
    """How a run ended for its rows; the CLI's exit code says the same (README)."""

    succeeded = "succeeded"
    """Every row succeeded."""
    rows_not_succeeded = "rows_not_succeeded"
    """The job is done, but some rows ended failed, exhausted, invalid_output, canceled or
    quarantined (the failures table names each, with its reason)."""
    unfinished = "unfinished"
    """Results are staged but not loaded (the warehouse was busy), or rows are still pending."""


class JobSummary(BaseModel):
    """What a finished (or resumed) job amounts to, read back from the warehouse."""

    model_config = ConfigDict(frozen=True)

    job_name: str
    kind: str
    model: str
    warehouse: str
    rows: int
    final_states: dict[str, int]
    result_types: dict[str, int]
    batches: int
    attempts: int
    input_tokens: int
    cache_write_5m_tokens: int
    cache_write_1h_tokens: int
    cache_read_tokens: int
    output_tokens: int
    batch_cost_usd: float | None
    realtime_cost_usd: float | None
    savings_usd: float | None
    cache_hit_rate: float | None
    rows_not_succeeded: int
    failures: list[FailureRow]
    details: list[SummaryDetail] = []
    """What the job's kind adds (label: accuracy against gold)."""
    staged_not_loaded: int = 0
    note: str | None = None
    mode: str = "batch"
    deadline: str | None = None
    """The job's absolute deadline (ISO, UTC), once known."""
    realtime_rows: int = 0
    """Rows sent in real time: they missed the batch (the deadline), or mode realtime."""
    realtime_spend_usd: float | None = 0.0
    """Spent in real time (full price); batch_cost_usd is what the batches cost."""
    cost_usd: float | None = None
    """What the job cost: batch_cost_usd + realtime_spend_usd (None: unpriced)."""
    possible_duplicate_requests: int = 0
    """Real-time calls whose answer was lost (sent again once): each possibly charged twice."""
    possible_duplicate_cost_usd: float | None = 0.0
    on_emulator: bool = False
    """The run talked to halfrate's emulator, not the API: its answers are stand-ins."""

    @classmethod
    def empty(cls, job_name: str, kind: str, model: str, warehouse: str) -> "JobSummary":
        """A summary with nothing known yet (filled from the ledger when the warehouse is busy)."""
        return cls(
            job_name=job_name,
            kind=kind,
            model=model,
            warehouse=warehouse,
            rows=0,
            final_states={},
            result_types={},
            batches=0,
            attempts=0,
            input_tokens=0,
            cache_write_5m_tokens=0,
            cache_write_1h_tokens=0,
            cache_read_tokens=0,
            output_tokens=0,
            batch_cost_usd=None,
            realtime_cost_usd=None,
            savings_usd=None,
            cache_hit_rate=None,
            rows_not_succeeded=0,
            failures=[],
        )

    @property
    def verdict(self) -> Verdict:
        """Whether every row succeeded, some did not, or the job is not settled yet."""
        if self.staged_not_loaded or any(s in NOT_FINISHED for s in self.final_states):
            return Verdict.unfinished
        if self.rows_not_succeeded:
            return Verdict.rows_not_succeeded
        return Verdict.succeeded

    @property
    def outcome(self) -> str:
        """One line for people: `45 succeeded, 10 exhausted, 7 quarantined: see the failures
        table` (the run's final state message in Prefect, the CLI's last line)."""
        states = ", ".join(f"{n:,} {state}" for state, n in self.final_states.items())
        text = states or "no rows loaded"
        if self.staged_not_loaded:
            text += (
                f"; {self.staged_not_loaded} batch(es) staged, not loaded (warehouse busy): "
                f"run `halfrate load {self.job_name}`"
            )
        elif self.verdict is Verdict.unfinished:
            text += ": rerun the job to settle the pending rows"
        elif self.verdict is Verdict.rows_not_succeeded:
            text += ": see the failures table"
        return text

    def detail(self, name: str) -> float | int | str | None:
        """The value of one of the kind's details (None if the kind has no such figure)."""
        return next((d.value for d in self.details if d.name == name), None)


def summarize(con: duckdb.DuckDBPyConnection, job: JobConfig, warehouse: Path) -> JobSummary:
    """Read a job's summary from the warehouse views (row_outcomes, job_costs) and its kind's."""
    job_name = job.name
    params = {"job_name": job_name}
    states = _succeeded_first(dict(con.execute(load_sql("report/job_states"), params).fetchall()))
    types = dict(con.execute(load_sql("report/job_result_types"), params).fetchall())
    n_batches, attempts = con.execute(load_sql("report/job_batches"), params).fetchone() or (0, 0)
    (realtime_rows,) = con.execute(load_sql("report/job_realtime_rows"), params).fetchone() or (0,)
    costs = _costs(con, job_name)
    failures = [
        FailureRow(row_number=r[0], row_id=r[1], final_state=r[2], reason=r[3], attempts=r[4])
        for r in con.execute(
            load_sql("report/job_failures"), {**params, "limit": FAILURE_ROWS}
        ).fetchall()
    ]
    return JobSummary(
        job_name=job_name,
        kind=job.kind,
        model=job.model,
        warehouse=str(warehouse),
        rows=sum(states.values()),
        final_states=states,
        result_types=types,
        batches=n_batches,
        attempts=attempts,
        details=kind_of(job).summarize(con, job_name),
        rows_not_succeeded=sum(n for s, n in states.items() if s != "succeeded"),
        failures=failures,
        mode=job.mode.value,
        realtime_rows=realtime_rows,
        **costs,
    )


def _succeeded_first(states: dict[str, int]) -> dict[str, int]:
    """`succeeded` first, then the others by count (the SQL's order)."""
    return dict(sorted(states.items(), key=lambda item: item[0] != "succeeded"))


def _costs(con: duckdb.DuckDBPyConnection, job_name: str) -> dict[str, float | int | None]:
    cursor = con.execute(
        "select * from job_costs where job_name = $job_name", {"job_name": job_name}
    )
    names = [d[0] for d in cursor.description or []]
    row = cursor.fetchone()
    values = dict(zip(names, row, strict=True)) if row else {}
    tokens = (
        "input_tokens",
        "cache_write_5m_tokens",
        "cache_write_1h_tokens",
        "cache_read_tokens",
        "output_tokens",
        "possible_duplicate_requests",
    )
    money = (
        "batch_cost_usd",
        "realtime_spend_usd",
        "cost_usd",
        "realtime_cost_usd",
        "savings_usd",
        "possible_duplicate_cost_usd",
        "cache_hit_rate",
    )
    out: dict[str, float | int | None] = {k: int(values.get(k) or 0) for k in tokens}
    out |= {k: _float(values.get(k)) for k in money}
    return out


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


EMULATOR_LINE = (
    "**Ran on the built-in emulator**, not the API: its answers are deterministic stand-ins "
    "(labels and scores are word-overlap guesses), so accuracy figures only show that the "
    "plumbing works; the costs are what the API would charge for the same tokens."
)


def failure_sentence(s: JobSummary, failures_url: str | None = None) -> str | None:
    """Partial failure in words: `12 of 300 rows did not succeed (10 exhausted, 2 quarantined);
    288 succeeded.`, pointing at the failures table (a link when its URL is known). None when
    no row failed."""
    if not s.rows_not_succeeded:
        return None
    states = ", ".join(f"{n:,} {k}" for k, n in s.final_states.items() if k != "succeeded")
    table = f"[the failures table]({failures_url})" if failures_url else "the failures table"
    return (
        f"{s.rows_not_succeeded:,} of {s.rows:,} rows did not succeed ({states}); "
        f"{s.final_states.get('succeeded', 0):,} succeeded. Each row that did not succeed is "
        f"listed with its reason in {table}."
    )


def render_markdown(s: JobSummary, failures_url: str | None = None) -> str:
    """The summary as Markdown, for the Prefect UI (`failures_url`: the failures table's page)."""
    types = " · ".join(f"{k} {v}" for k, v in s.result_types.items()) or "none"
    lines = [
        f"# halfrate job `{s.job_name}`",
        "",
        f"Kind `{s.kind}` · model `{s.model}` · {s.rows} rows · {s.batches} batches over {s.attempts} attempt(s)",
        "",
        f"**Outcome:** {_outcome(s, failures_url)}  ",
        f"**Results (all attempts):** {types}  ",
    ]
    lines += [f"**{d.title}:** {d.text}  " for d in s.details if d.shown]
    if s.on_emulator:  # next to the accuracy figures it qualifies
        lines.append(f"{EMULATOR_LINE}  ")
    lines += [
        "",
        "| tokens | input | cache write 5m | cache write 1h | cache read | output |",
        "|---|---:|---:|---:|---:|---:|",
        f"| | {s.input_tokens:,} | {s.cache_write_5m_tokens:,} | {s.cache_write_1h_tokens:,} "
        f"| {s.cache_read_tokens:,} | {s.output_tokens:,} |",
        "",
        f"**Cost at batch prices:** {format_usd(s.batch_cost_usd)} · **real-time equivalent:** "
        f"{format_usd(s.realtime_cost_usd)} · **saved:** {format_usd(s.savings_usd)} · "
        f"**cache hit rate:** {_pct(s.cache_hit_rate)}",
        *[f"\n**{line}**" for line in realtime_lines(s)],
        "",
        f'Warehouse: `{s.warehouse}` (query with `halfrate sql "select * from job_costs"`)',
    ]
    if s.note:
        lines.append(f"\n**Note:** {s.note}")
    if s.staged_not_loaded:
        lines.append(
            f"\n**{s.staged_not_loaded} batches are staged but not loaded** "
            "(the warehouse was busy): rerun the job to load them."
        )
    return "\n".join(lines)


def _outcome(s: JobSummary, failures_url: str | None) -> str:
    if s.verdict is Verdict.rows_not_succeeded:
        return failure_sentence(s, failures_url) or s.outcome
    return s.outcome


def realtime_lines(s: JobSummary) -> list[str]:
    """What the summary says of real-time sends: rows that missed the batch, their cost, and
    possible double charges (nothing for a job that never left the batch)."""
    lines = []
    if s.realtime_rows:
        why = (
            "sent in real time (mode: realtime)"
            if s.mode == "realtime"
            else f"missed the batch and were finished in real time (deadline {s.deadline or '?'})"
        )
        lines.append(
            f"{s.realtime_rows:,} rows {why}: {format_usd(s.realtime_spend_usd)} at full price; "
            f"batches {format_usd(s.batch_cost_usd)}; total {format_usd(s.cost_usd)}"
        )
    if s.possible_duplicate_requests:
        lines.append(
            f"{s.possible_duplicate_requests:,} real-time calls lost their answer and were sent "
            f"again: possibly charged twice, up to {format_usd(s.possible_duplicate_cost_usd)} "
            "more (job_costs.possible_duplicate_*)"
        )
    return lines


class ChainSummary(BaseModel):
    """A chain of jobs run in order (`halfrate run a.yaml b.yaml`): each stage and the total."""

    model_config = ConfigDict(frozen=True)

    stages: list[JobSummary]
    batch_cost_usd: float | None
    """The stages' cost at batch prices; None when a stage's cost cannot be priced."""
    realtime_cost_usd: float | None
    savings_usd: float | None
    realtime_spend_usd: float | None = 0.0
    """What the stages spent in real time (full price), beside batch_cost_usd."""

    @classmethod
    def of(cls, stages: list[JobSummary]) -> "ChainSummary":
        def total(values: list[float | None]) -> float | None:
            return None if any(v is None for v in values) else float(sum(v or 0 for v in values))

        return cls(
            stages=stages,
            batch_cost_usd=total([s.batch_cost_usd for s in stages]),
            realtime_cost_usd=total([s.realtime_cost_usd for s in stages]),
            savings_usd=total([s.savings_usd for s in stages]),
            realtime_spend_usd=total([s.realtime_spend_usd for s in stages]),
        )


def render_chain_markdown(chain: ChainSummary) -> str:
    """The chain's stages and total cost as Markdown, for the Prefect UI."""
    lines = [
        f"# halfrate chain: {' → '.join(f'`{s.job_name}`' for s in chain.stages)}",
        "",
        "| stage | kind | rows | final states | batch cost | real-time | saved |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    for s in chain.stages:
        states = ", ".join(f"{k} {v}" for k, v in s.final_states.items())
        lines.append(
            f"| `{s.job_name}` | {s.kind} | {s.rows:,} | {states} | {format_usd(s.batch_cost_usd)}"
            f" | {format_usd(s.realtime_cost_usd)} | {format_usd(s.savings_usd)} |"
        )
    lines.append(
        f"| **total** | | | | **{format_usd(chain.batch_cost_usd)}** | "
        f"{format_usd(chain.realtime_cost_usd)} | {format_usd(chain.savings_usd)} |"
    )
    if chain.realtime_spend_usd:
        lines.append(
            f"\nSpent in real time (full price, on top of the batch cost): "
            f"{format_usd(chain.realtime_spend_usd)}"
        )
    return "\n".join(lines)


def format_usd(value: float | Decimal | None, *, versus: float | Decimal | None = None) -> str:
    """Money for people, the one formatter for logs, events, artifacts and the CLI.

    Cents from a dollar up ($1,234.57), four decimals under a dollar ($0.1171), and more
    decimals only where fewer would show a non-zero amount as zero, or `versus` (a figure this
    one is compared with, e.g. a budget) as the same amount. None is a cost that cannot be
    priced: "unpriced".
    """
    if value is None:
        return "unpriced"
    amount = Decimal(str(value))
    other = None if versus is None else Decimal(str(versus))
    places = 2 if not amount or abs(_round(amount, 4)) >= 1 else 4
    if amount and not _round(amount, places):  # a tiny amount: two significant digits
        places = min(MAX_USD_PLACES, 1 - amount.adjusted())
    while (
        places < MAX_USD_PLACES
        and other is not None
        and other != amount
        and _round(other, places) == _round(amount, places)
    ):
        places += 1
    rounded = _round(amount, places)
    return f"{'-' if rounded < 0 else ''}${abs(rounded):,.{places}f}"


def _round(amount: Decimal, places: int) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"
