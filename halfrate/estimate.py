"""Cost before submitting: count the shared prefix and a sample of rows, then price the job.

Two `count_tokens` calls (free, rate-limited): one for the shared prefix alone, one for a
request whose message holds a sample of row texts. Token counts per character of that sample
extrapolate to every row, so the estimate costs two API calls whatever the job's size.
"""

from pathlib import Path
from typing import Any

import orjson
import polars as pl

from halfrate.config import JobConfig
from halfrate.gateway import BatchGateway
from halfrate.pricing import CostEstimate, estimate_cost

SAMPLE_ROWS = 50
SAMPLE_CHARS = 200_000  # keep the sampled request well under count_tokens' 32 MB limit


class BudgetExceededError(RuntimeError):
    """The job's expected cost is above its `max_cost_usd`: nothing was submitted."""


def estimate_job(
    client: BatchGateway, job: JobConfig, first_request_file: Path, rows: Path
) -> CostEstimate:
    """Estimate the job's cost from its built request file and its rows."""
    params = _first_params(first_request_file)
    prefix = _count(client, params, "x")
    texts = pl.scan_parquet(rows).select(pl.col("text"))
    stats = texts.select(
        pl.len().alias("n"), pl.col("text").str.len_chars().mean().alias("mean_chars")
    ).collect()
    n_rows, mean_chars = int(stats["n"][0]), float(stats["mean_chars"][0] or 0.0)
    sample = "\n".join(texts.head(SAMPLE_ROWS).collect()["text"].to_list())[:SAMPLE_CHARS]
    sample_tokens = max(_count(client, params, sample) - prefix, 0)
    per_char = sample_tokens / max(len(sample), 1)
    return estimate_cost(
        model=job.model,
        n_requests=n_rows,
        prefix_tokens=prefix,
        mean_input_tokens=mean_chars * per_char,
        max_tokens=job.max_tokens,
        cache_ttl=job.cache_ttl.value,
        primed=False,  # the prime request is one of the rows, not an extra one
    )


def check_budget(job: JobConfig, estimate: CostEstimate) -> None:
    """Refuse to submit when even the low estimate is above the job's budget."""
    low = estimate.batch_cost_usd_low
    if job.max_cost_usd is not None and low is not None and low > job.max_cost_usd:
        raise BudgetExceededError(
            f"job {job.name!r}: expected cost ${low:,.2f} at batch prices is above max_cost_usd "
            f"${job.max_cost_usd:,.2f}; nothing was submitted. Raise max_cost_usd, use a smaller "
            "source or a cheaper model."
        )


def render_estimate(job: JobConfig, e: CostEstimate) -> str:
    """The estimate as Markdown (Prefect artifact and CLI)."""

    def rng(low: float | None, high: float | None) -> str:
        return (
            "n/a (model not in the price table)" if low is None else f"${low:,.4f} – ${high:,.4f}"
        )

    return "\n".join(
        [
            f"# Cost estimate for `{job.name}` ({e.model})",
            "",
            f"- at batch prices: **{rng(e.batch_cost_usd_low, e.batch_cost_usd_high)}**",
            f"- real-time equivalent: {rng(e.realtime_cost_usd_low, e.realtime_cost_usd_high)}",
            f"- saved by batching and caching: {rng(e.savings_usd_low, e.savings_usd_high)}",
            f"- prompt cache used: {'yes' if e.cache_used else 'no'} "
            f"(model minimum {e.min_cacheable_tokens:,} tokens)",
            "",
            *[f"- {a}" for a in e.assumptions],
        ]
    )


def _first_params(path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        params: dict[str, Any] = orjson.loads(fh.readline())["params"]
    return params


def _count(client: BatchGateway, params: dict[str, Any], text: str) -> int:
    kwargs = {
        k: v for k, v in params.items() if k in ("system", "tools", "tool_choice", "output_config")
    }
    # Through the gateway: its errors carry no SDK object (and so no API key) to Prefect.
    return client.count_tokens(
        {"model": params["model"], "messages": [{"role": "user", "content": text}], **kwargs}
    )
