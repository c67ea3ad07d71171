"""Cost before submitting: measure the job's tokens, decide the priming batch, price the job.

It runs before the requests are built (the priming decision needs the prefix's length) and
costs at most four `count_tokens` calls (free, rate-limited), whatever the job's size, all
through the gateway:

1. the request for a one-character row ("x"), 2. the same without the shared prefix (system
and tools): their difference is the cacheable prefix, the second is a message's own overhead,
3. a sample of rows (the first 50, up to 200,000 characters): tokens per character, applied to
every row's length, 4. for a label job, every possible answer: the output length.
PDFs and images of a folder source add the tokens estimated per file when it was read
(halfrate/documents.py: 2,250 per PDF page, width x height / 750 per image), with a wider range.

When count_tokens fails for good, the estimate is made from characters (about four per token)
and says it is rough; a job with a budget cap then stops before anything is sent.
"""

import math
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from halfrate.build import request_for
from halfrate.config import JobConfig
from halfrate.cost_model import CostEstimate, TokenProfile, estimate_cost, plan_prime
from halfrate.documents import PDF_PAGE_TOKENS
from halfrate.errors import ActionableError, APIError, ErrorKind
from halfrate.gateway import BatchGateway
from halfrate.kinds.base import SendMode
from halfrate.summary import format_usd
from halfrate.workspace import write_atomic

SAMPLE_ROWS = 50
SAMPLE_CHARS = 200_000  # keep the sampled request well under count_tokens' 32 MB limit
SAMPLED_ROWS_RANGE = (0.9, 1.1)  # rows extrapolated from a sample's tokens per character
COUNTED_ROWS_RANGE = (0.98, 1.02)  # the sample holds every row (only their split is estimated)
ROUGH_RANGE = (0.5, 2.0)  # from characters alone: about 4 per token, 2 to 8 in practice
CHARS_PER_TOKEN = 4
DOCUMENT_RANGE = (0.6, 1.5)  # a PDF page is 1,500 to 3,000 tokens: 2,250 is assumed
SHORTEST_ANSWER_SHARE = 0.8  # low output: the shortest answer's share of the mean, with slack
UNKNOWN_OUTPUT_SHARE = 0.5  # expected output of a job whose answers are not known in advance
PREFIX_KEYS = ("system", "tools", "tool_choice")  # the cached prefix (tools, then system)
COUNT_ERRORS: tuple[type[Exception], ...] = (APIError,)
"""count_tokens failures that make the estimate rough (after the SDK's own retries)."""


class BudgetError(RuntimeError, ActionableError):
    """The job's budget (`max_cost_usd`) stops it: nothing was submitted."""


class BudgetExceededError(BudgetError):
    """The job's expected cost is above its `max_cost_usd`."""


class BudgetUncheckedError(BudgetError):
    """The cost cannot be checked against `max_cost_usd` (tokens not counted, or unpriced)."""


def estimate_job(gateway: BatchGateway, job: JobConfig, rows: Path) -> CostEstimate | None:
    """Measure and price attempt 1 of `job` from its extracted rows (None: no rows)."""
    chars = pl.scan_parquet(rows).select(pl.col("text").str.len_chars()).collect().to_series()
    if chars.len() == 0:
        return None
    texts = pl.scan_parquet(rows).select("text").head(SAMPLE_ROWS).collect().to_series()
    sample = "\n".join(texts.to_list())[:SAMPLE_CHARS]
    whole = chars.len() <= SAMPLE_ROWS and len(sample) == int(chars.sum()) + chars.len() - 1
    try:
        profile, row_tokens = _counted(gateway, job, chars, sample, whole)
    except COUNT_ERRORS as exc:
        if isinstance(exc, APIError) and exc.kind is ErrorKind.auth:
            raise  # a refused key fails every call the job makes: say so, not "rough"
        profile, row_tokens = _rough(job, chars, f"{type(exc).__name__}: {exc}")
    if "doc_tokens" in pl.read_parquet_schema(rows):
        profile, row_tokens = _with_documents(profile, row_tokens, rows)
    prime, reason = plan_prime(
        job.prime_cache, job.cache_ttl.value, chars.len(), profile, job.model
    )
    return estimate_cost(job.model, row_tokens, profile, job.cache_ttl.value, prime, reason)


def _with_documents(
    profile: TokenProfile, row_tokens: pl.Series, rows: Path
) -> tuple[TokenProfile, pl.Series]:
    """Add the PDFs' and images' tokens (estimated per file when the folder was read) to the
    rows' text tokens, and widen the range by what those rules of thumb can be off."""
    tokens = pl.scan_parquet(rows).select("doc_tokens").collect().to_series().fill_null(0)
    files = int((tokens > 0).sum())
    low, high = profile.row_range
    note = (
        f"documents: {files:,} PDFs or images, {int(tokens.sum()):,} tokens by the rules of "
        f"thumb ({PDF_PAGE_TOKENS:,} per PDF page, width x height / 750 per image)"
    )
    profile = profile.model_copy(
        update={
            "row_range": (min(low, DOCUMENT_RANGE[0]), max(high, DOCUMENT_RANGE[1])),
            "notes": (*profile.notes, note),
        }
    )
    return profile, row_tokens + tokens


def _params(job: JobConfig, text: str, *, prefix: bool = True) -> dict[str, Any]:
    params = dict(request_for(job, "estimate", text)["params"])
    return params if prefix else {k: v for k, v in params.items() if k not in PREFIX_KEYS}


def _counted(
    gateway: BatchGateway, job: JobConfig, chars: pl.Series, sample: str, whole: bool
) -> tuple[TokenProfile, pl.Series]:
    with_prefix = gateway.count_tokens(_params(job, "x"))
    bare = gateway.count_tokens(_params(job, "x", prefix=False))
    overhead = max(bare - 1, 0)  # the message's framing; "x" is one token
    sampled = gateway.count_tokens(_params(job, sample, prefix=False)) if sample else bare
    per_char = max(sampled - overhead, 0) / max(len(sample), 1)
    answers = _answers(job)
    answer_tokens = None
    if answers:
        joined = gateway.count_tokens(_params(job, "\n".join(answers), prefix=False))
        answer_tokens = max(joined - overhead, 1) / len(answers)
    notes = (
        f"prefix {with_prefix - bare:,} tokens (count_tokens); rows: {per_char:.3f} tokens per "
        f"character from {'every row' if whole else 'a sample of rows'} "
        f"+ {overhead} per message",
    )
    profile = TokenProfile(
        prefix_tokens=max(with_prefix - bare, 0),
        row_range=COUNTED_ROWS_RANGE if whole else SAMPLED_ROWS_RANGE,
        output_tokens=_output(job, answers, answer_tokens),
        notes=notes,
    )
    return profile, chars * per_char + overhead


def _rough(job: JobConfig, chars: pl.Series, reason: str) -> tuple[TokenProfile, pl.Series]:
    prefix_params = {k: v for k, v in _params(job, "").items() if k in PREFIX_KEYS}
    prefix_chars = len(orjson.dumps(prefix_params))
    answers = _answers(job)
    answer_tokens = None
    if answers:
        answer_tokens = sum(len(a) for a in answers) / len(answers) / CHARS_PER_TOKEN
    profile = TokenProfile(
        prefix_tokens=prefix_chars / CHARS_PER_TOKEN,
        prefix_range=ROUGH_RANGE,
        row_range=ROUGH_RANGE,
        output_tokens=_output(job, answers, answer_tokens, rough=True),
        counted=False,
        notes=(
            f"ROUGH: count_tokens failed ({reason}); tokens are estimated from characters "
            f"(about {CHARS_PER_TOKEN} per token, ranging from 2 to 8)",
        ),
    )
    return profile, chars / CHARS_PER_TOKEN


def _answers(job: JobConfig) -> list[str] | None:
    """Every answer the job can give, when they are known in advance (a label job's)."""
    labels: list[str] | None = getattr(job, "labels", None)
    if not labels:
        return None
    return [orjson.dumps({"label": label}).decode() for label in labels]


def _output(
    job: JobConfig, answers: list[str] | None, mean_tokens: float | None, rough: bool = False
) -> tuple[float, float, float]:
    """Low, expected and high output tokens per request."""
    high = float(job.max_tokens)
    if not answers or mean_tokens is None:
        return 1.0, high * UNKNOWN_OUTPUT_SHARE, high
    lengths = [len(a) for a in answers]
    shortest = mean_tokens * min(lengths) / (sum(lengths) / len(lengths))
    low = shortest * (ROUGH_RANGE[0] if rough else SHORTEST_ANSWER_SHARE)
    return max(1.0, math.floor(min(low, high))), min(mean_tokens, high), high


def check_budget(job: JobConfig, e: CostEstimate) -> None:
    """Refuse to submit when the expected cost is above `max_cost_usd`, or cannot be known."""
    cap = job.max_cost_usd
    if cap is None:
        return
    cap_text = format_usd(cap)
    if not e.profile.counted:
        raise BudgetUncheckedError(
            f"job {job.name!r}: max_cost_usd is {cap_text} but count_tokens failed, so the cost "
            f"cannot be checked against it ({e.profile.notes[0]}); nothing was submitted. Rerun "
            "when count_tokens answers again, or remove max_cost_usd to run on a rough estimate."
        )
    realtime = job.mode is SendMode.realtime
    expected = e.realtime.expected if realtime else e.batch.expected
    prices = "real-time prices (mode: realtime)" if realtime else "batch prices"
    if expected is None:
        raise BudgetUncheckedError(
            f"job {job.name!r}: max_cost_usd is {cap_text} but the job cannot be priced "
            f"({'; '.join(e.unpriced)}); nothing was submitted. Add the missing price to "
            "halfrate/prices.csv, change model or cache_ttl, or remove max_cost_usd."
        )
    if expected > cap:
        raise BudgetExceededError(
            f"job {job.name!r}: expected cost {format_usd(expected, versus=cap)} at {prices} "
            f"(range {_range(e, realtime)}) is above max_cost_usd "
            f"{format_usd(cap, versus=expected)}; "
            "nothing was submitted. Raise max_cost_usd, use a smaller source or a cheaper model."
        )


def _range(e: CostEstimate, realtime: bool = False) -> str:
    band = e.realtime if realtime else e.batch
    return f"{format_usd(band.low)} – {format_usd(band.high)}"


def render_estimate(job: JobConfig, e: CostEstimate) -> str:
    """The estimate as Markdown (Prefect artifact and CLI)."""

    def figures(low: float | None, expected: float | None, high: float | None) -> str:
        return f"{format_usd(expected)} expected ({format_usd(low)} – {format_usd(high)})"

    savings = e.savings
    low_long, expected_long, high_long = e.long_context_requests
    lines = [
        f"# Cost estimate for `{job.name}` ({e.model}, {e.n_requests:,} requests)",
        "",
        f"- at batch prices: **{figures(e.batch.low, e.batch.expected, e.batch.high)}**",
        "- real-time equivalent: " + figures(e.realtime.low, e.realtime.expected, e.realtime.high),
        f"- saved by batching: {figures(savings.low, savings.expected, savings.high)}",
        f"- prompt cache: {'used' if e.cache_used else 'not used'} "
        f"(model minimum {e.min_cacheable_tokens:,} tokens)",
        f"- priming batch: {e.prime_reason}",
    ]
    if high_long:
        lines.append(
            f"- long context: {expected_long:,} requests expected over the long-context "
            f"threshold ({low_long:,} – {high_long:,})"
        )
    if not e.profile.counted:
        lines.append("- **rough estimate**: token counting failed, see below")
    lines += [f"- unpriced: {u}" for u in e.unpriced]
    return "\n".join([*lines, "", "Assumptions:", "", *[f"- {a}" for a in e.assumptions]])


def save_estimate(path: Path, e: CostEstimate) -> None:
    """Keep the estimate in the job folder (the build step reads its priming decision)."""
    write_atomic(path, e.model_dump_json(indent=2).encode())


def load_estimate(path: Path) -> CostEstimate | None:
    """The estimate saved by `save_estimate`, or None if there is none (or it is unreadable)."""
    try:
        return CostEstimate.model_validate_json(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None
