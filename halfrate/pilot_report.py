"""What a pilot measured and what it projects, read from the job's staged files only.

The pilot's results (results/<batch>.outcomes.parquet), the request indexes (which row each
custom_id is) and extract/rows.parquet (each row's size) are all on disk once the pilot's
batches are downloaded, so the report never waits on a busy warehouse. It is kept as
pilot.json in the job folder (the projection the budget was checked against) and loaded into
the warehouse's `job_estimates` beside the static estimate.
"""

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from pydantic import BaseModel, ConfigDict

from halfrate import projection
from halfrate.config import JobConfig
from halfrate.cost_model import Bracket
from halfrate.estimate import load_estimate
from halfrate.kinds.base import SendMode
from halfrate.ledger import CLOSED, BatchRecord, BatchStatus, Ledger
from halfrate.pricing import Price, price_list
from halfrate.projection import Usage
from halfrate.results import staged_outcomes
from halfrate.retry import RETRY_OUTCOMES
from halfrate.workspace import JobPaths, write_atomic

CHARS_PER_DOC_TOKEN = 4  # a document's estimated tokens count as this many characters of size
_USAGE = (
    "input_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "cache_read_input_tokens",
    "output_tokens",
)


class PilotMeasure(BaseModel):
    """What the pilot's requests used and cost."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rows: int
    requests: int
    billed_requests: int
    output_tokens_mean: float | None
    """Per row: the mean of its requests' output tokens, summed (billed requests)."""
    output_tokens_p95: float | None
    input_tokens_mean: float | None
    """Per row: uncached input, cache writes and cache reads."""
    cache_hit_rate: float | None
    """Cache reads over all prompt tokens of the billed requests (as job_costs has it)."""
    invalid_output_rate: float
    retry_rate: float
    """Requests that need another try (invalid output, retriable errors)."""
    cost_usd: float | None
    cost_per_row_usd: float | None


class PilotReport(BaseModel):
    """The pilot's measurements, and the whole job's cost projected from them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_name: str
    model: str
    made_at: datetime
    pilot: PilotMeasure
    prices: str = "batch"
    """What the figures are priced at: 'batch', or 'realtime' for a `mode: realtime` job."""
    known_usd: float | None
    """What the prime and pilot batches cost (real-time pseudo-batches at full price)."""
    remaining_requests: int
    projected: Bracket
    """The whole job: low and high are a 90% bootstrap interval."""
    static: Bracket | None
    """The static estimate (estimate.json), for comparison."""
    cold_cache_usd: float | None = None
    """The expected cost if the rest is sent after the cache's TTL ran out since the pilot
    (its requests then write the prefix again instead of reading it)."""
    cache_ttl: str = "none"
    max_cost_usd: float | None = None
    """The job's budget when the pilot ran (None: no budget)."""
    problems: tuple[str, ...] = ()
    """Why a figure is missing (a price the table lacks, no billed pilot request)."""


def measure(job: JobConfig, paths: JobPaths, ledger: Ledger, estimate_file: Path) -> PilotReport:
    """Measure the pilot's batches (all downloaded) and project the whole job."""
    records = ledger.records(attempt=1)
    sent = [r for r in records if r.batch_id is not None]
    rest = [r for r in records if r.file.purpose == "main" and r.status not in CLOSED]
    results = _results(job, paths, [r for r in sent if r.file.purpose == "pilot"])
    usages = [_usage_of(row) for row in results.iter_rows(named=True)]
    primed = _results(job, paths, [r for r in sent if r.file.purpose == "prime"])
    bands = price_list(job.model)
    problems: list[str] = [] if bands else [f"{job.model} has no price in halfrate/prices.csv"]
    pilot_usd = _cost(bands, results, problems)
    prime_usd = _cost(bands, primed, problems)
    realtime = job.mode is SendMode.realtime
    projected: tuple[float, float, float] | str | None = None
    cold: float | str | None = None
    if pilot_usd is not None and prime_usd is not None:
        whole = projection.Job(
            rest=_sizes(paths, rest).group_by("x").agg(n=pl.len()),
            bands=bands,
            max_tokens=job.max_tokens,
            max_attempts=job.max_attempts,
            known_usd=prime_usd + pilot_usd,
            pilot_retried=sum(u.retry for u in usages),
            pilot_billed_mean_usd=pilot_usd / max(1, sum(u.billed for u in usages)),
            realtime=realtime,
        )
        projected = projection.project(usages, whole, job.fingerprint())
        cold = projection.cold_cache(usages, whole, job.cache_ttl.value)
    if projected is None and pilot_usd is not None:
        problems.append(
            f"none of the pilot's {len(usages)} requests succeeded, so nothing was measured "
            "to project from: see its rows' outcomes (`halfrate status`, row_outcomes)"
        )
    if isinstance(projected, str):
        problems.append(projected)
    static = load_estimate(estimate_file)
    low, expected, high = projected if isinstance(projected, tuple) else (None, None, None)
    return PilotReport(
        job_name=job.name,
        model=job.model,
        made_at=datetime.now(UTC),
        pilot=_measure(results, usages, pilot_usd),
        known_usd=None if pilot_usd is None or prime_usd is None else prime_usd + pilot_usd,
        remaining_requests=sum(r.file.n_requests for r in rest),
        projected=Bracket(low=low, expected=expected, high=high),
        prices="realtime" if realtime else "batch",
        static=(static.realtime if realtime else static.batch) if static else None,
        cold_cache_usd=cold if isinstance(cold, float) else None,
        cache_ttl=job.cache_ttl.value,
        max_cost_usd=job.max_cost_usd,
        problems=tuple(dict.fromkeys(problems)),
    )


def _cost(bands: tuple[Price, ...], results: pl.DataFrame, problems: list[str]) -> float | None:
    """What these results cost (None, with the reason, when unpriced): a batch's requests at
    batch prices, a real-time pseudo-batch's at full price."""
    if not bands:
        return None
    total = 0.0
    for row in results.iter_rows(named=True):
        u = _usage_of(row)
        cost = projection.request_cost(bands, u) if u.billed else None
        if isinstance(cost, str):
            problems.append(cost)
            return None
        if cost is not None:
            total += cost.realtime if row["realtime"] else cost.batch
    return total


def _sizes(paths: JobPaths, records: list[BatchRecord]) -> pl.DataFrame:
    """Each request of these files with its row's size `x`."""
    if not records:
        return pl.DataFrame(schema={"custom_id": pl.String, "row_id": pl.String, "x": pl.Float64})
    rows = pl.scan_parquet(paths.rows)
    names = rows.collect_schema().names()
    keys = ["row_id", "request"] if "request" in names else ["row_id"]
    size = pl.col("text").str.len_chars().fill_null(0).cast(pl.Float64)
    if "doc_tokens" in names:
        size = size + CHARS_PER_DOC_TOKEN * pl.col("doc_tokens").fill_null(0)
    indexes = [pl.scan_parquet(paths.index_file(r.file.path)) for r in records]
    index = pl.concat(indexes, how="diagonal_relaxed")
    if "request" in keys and "request" not in index.collect_schema().names():
        index = index.with_columns(request=pl.lit("", pl.String))
    return (
        index.select("custom_id", *keys)
        .join(rows.select(*keys, size.alias("x")), on=keys, how="left")
        .select("custom_id", "row_id", pl.col("x").fill_null(0.0))
        .collect()
    )


def _results(job: JobConfig, paths: JobPaths, records: list[BatchRecord]) -> pl.DataFrame:
    """The parsed results of these batches, each with its row and size."""
    missing = [r.file.path for r in records if r.status not in _DOWNLOADED]
    if missing:
        raise FileNotFoundError(f"the pilot's batches are not all downloaded yet: {missing[:3]}")
    sizes = _sizes(paths, records)
    if not records:
        return sizes.with_columns(
            result_type=pl.lit(None, pl.String),
            outcome=pl.lit(None, pl.String),
            realtime=pl.lit(False),
            **{c: pl.lit(0, pl.Int64) for c in _USAGE},
        )
    parsed = pl.concat(
        [
            pl.scan_parquet(staged_outcomes(paths, job, r.batch_id or ""))
            .select("custom_id", "result_type", "outcome", *_USAGE)
            .with_columns(realtime=pl.lit(r.realtime))
            for r in records
        ]
    )
    # in custom_id order: results come back in any order, the bootstrap must not depend on it
    return parsed.join(sizes.lazy(), on="custom_id", how="inner").sort("custom_id").collect()


_DOWNLOADED = (BatchStatus.downloaded, BatchStatus.loaded)


def _usage_of(row: dict[str, object]) -> Usage:
    def tokens(name: str) -> int:
        value = row.get(name)
        return int(value) if isinstance(value, int) else 0

    return Usage(
        x=float(row["x"]),  # type: ignore[arg-type]
        billed=row["result_type"] == "succeeded",
        retry=row["outcome"] in RETRY_OUTCOMES,
        input_tokens=tokens("input_tokens"),
        cache_write_5m=tokens("cache_write_5m_tokens"),
        cache_write_1h=tokens("cache_write_1h_tokens"),
        cache_read=tokens("cache_read_input_tokens"),
        output_tokens=tokens("output_tokens"),
    )


def _measure(results: pl.DataFrame, usages: list[Usage], cost: float | None) -> PilotMeasure:
    billed = results.filter(pl.col("result_type") == "succeeded")
    per_row = billed.group_by("row_id").agg(
        output=pl.col("output_tokens").sum().cast(pl.Float64),
        prompt=pl.sum_horizontal(_USAGE[:4]).sum().cast(pl.Float64),
    )
    prompt = sum(u.input_tokens + u.prefix for u in usages if u.billed)
    reads = sum(u.cache_read for u in usages if u.billed)
    rows = results["row_id"].n_unique()
    n = max(len(usages), 1)
    return PilotMeasure(
        rows=rows,
        requests=len(usages),
        billed_requests=billed.height,
        output_tokens_mean=_stat(per_row["output"], "mean"),
        output_tokens_p95=_stat(per_row["output"], "p95"),
        input_tokens_mean=_stat(per_row["prompt"], "mean"),
        cache_hit_rate=reads / prompt if prompt else None,
        invalid_output_rate=results.filter(pl.col("outcome") == "invalid_output").height / n,
        retry_rate=sum(u.retry for u in usages) / n,
        cost_usd=cost,
        cost_per_row_usd=None if cost is None or not rows else cost / rows,
    )


def _stat(values: pl.Series, which: str) -> float | None:
    if values.is_empty():
        return None
    if which == "mean":
        return float(values.mean())  # type: ignore[arg-type]
    return float(values.quantile(0.95, "nearest"))  # type: ignore[arg-type]


def save_report(path: Path, report: PilotReport) -> None:
    write_atomic(path, report.model_dump_json(indent=2).encode())


def load_report(path: Path) -> PilotReport | None:
    try:
        return PilotReport.model_validate_json(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None
