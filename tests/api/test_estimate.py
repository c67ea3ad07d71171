"""The estimate against real bills: jobs run end to end on the emulator with the real SDK.

Each job goes through the pipeline's own steps (prepare, extract, estimate, build, submit,
download, load) with the emulator's clock frozen and its batches ended on demand, and the
estimate is checked against what `job_costs` bills from the returned usage.
"""

import csv
import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
import yaml
from apitools import Api

from halfrate import pipeline
from halfrate.cost_model import CostEstimate
from halfrate.estimate import BudgetExceededError, BudgetUncheckedError, render_estimate
from halfrate.settings import get_settings
from halfrate.workspace import job_paths
from halfrate_emulator import FaultConfig, HttpFault

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
DEMO = yaml.safe_load((SAMPLES / "intents.yaml").read_text(encoding="utf-8"))
LONG_LABELS = [
    f"{intent}: the person asks the assistant to do exactly this, right now, and nothing else"
    for intent in DEMO["labels"]
]
HAIKU_55 = "claude-haiku-5-5"


@dataclass
class Ran:
    """A job that ran: its estimate, its job_costs row and the emulator's create count."""

    estimate: CostEstimate
    costs: dict[str, Any]
    batches: int
    name: str


@pytest.fixture
def emulator(make_api: Callable[..., Api], monkeypatch: pytest.MonkeyPatch) -> Api:
    api = make_api()
    monkeypatch.setenv("ANTHROPIC_BASE_URL", api.server.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setenv("HALFRATE_RECONCILE_WAIT", "0.3")
    monkeypatch.setenv("HALFRATE_MAX_TEXT_CHARS", "2000000")
    get_settings.cache_clear()
    return api


def write_job(tmp_path: Path, name: str, rows: int = 120, **keys: Any) -> Path:
    """The demo job on its first `rows` rows (or `source`), with keys overridden."""
    source = tmp_path / f"{name}.csv"
    if "source" not in keys:
        lines = (SAMPLES / "intents.csv").read_text(encoding="utf-8").splitlines(keepends=True)
        source.write_text("".join(lines[: rows + 1]), encoding="utf-8")
        keys["source"] = str(source)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(DEMO | {"name": name} | keys), encoding="utf-8")
    return path


def long_texts(tmp_path: Path, sizes: list[int]) -> str:
    """A source whose rows have these many characters (4 characters a token on the emulator)."""
    rng = random.Random(5)
    words = ["play", "some", "jazz", "book", "a", "table", "will", "it", "rain", "rate", "film"]
    path = tmp_path / "long.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text", "intent"])
        for i, size in enumerate(sizes):
            text = ""
            while len(text) < size:
                text += rng.choice(words) + " "
            writer.writerow([f"doc{i}", text[:size].strip(), "play_music"])
    return str(path)


def estimate(job_file: Path, *, enforce_budget: bool = False) -> CostEstimate:
    settings = get_settings()
    job = pipeline.prepare(str(job_file), None, False, settings)
    pipeline.extract(job, settings)
    cost = pipeline.estimate(job, settings, enforce_budget=enforce_budget)
    assert cost is not None
    return cost


def run(api: Api, job_file: Path) -> Ran:
    """Estimate, then run attempt 1 to the end and read its bill from job_costs."""
    settings = get_settings()
    creates = len(api.admin.audit())
    cost = estimate(job_file, enforce_budget=True)
    job = pipeline.prepare(str(job_file), None, False, settings)
    extracted = pipeline.extract(job, settings)
    files = pipeline.build(job, settings, 1)
    for purpose in pipeline.phases(files):
        for record in pipeline.submit(job, settings, 1, purpose):
            api.admin.force_end(record.batch_id)
        assert pipeline.check(job, settings, 1).all_ended
        pipeline.download(job, settings, 1)
        pipeline.load(job, settings, extracted)
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        cursor = con.execute("select * from job_costs where job_name = ?", [job.name])
        names = [d[0] for d in cursor.description or []]
        costs = dict(zip(names, cursor.fetchone() or (), strict=True))
    return Ran(cost, costs, len(api.admin.audit()) - creates, job.name)


def assert_brackets(ran: Ran, *, near_expected: bool = True) -> None:
    """low <= actual <= high, and (on the emulator) the expected figure within 5%."""
    b, actual = ran.estimate.batch, ran.costs["batch_cost_usd"]
    assert actual is not None and b.low is not None and b.high is not None
    assert b.expected is not None
    assert b.low <= actual <= b.high, (ran.name, b, actual)
    if near_expected:
        assert abs(b.expected - float(actual)) <= 0.05 * float(actual), (ran.name, b, actual)


def test_low_expected_high_bracket_the_bill_with_and_without_cache_and_long_outputs(
    emulator: Api, tmp_path: Path
) -> None:
    jobs = {
        "cached": write_job(tmp_path, "cached"),
        # the same prefix again: the cache is still warm, so not even one write is paid
        "warm": write_job(tmp_path, "warm"),
        "no-cache": write_job(tmp_path, "no-cache", cache_ttl="none"),
        "unprimed": write_job(
            tmp_path, "unprimed", prime_cache=False, instructions="Unprimed. " * 600
        ),
        "long-outputs": write_job(
            tmp_path, "long-outputs", labels=LONG_LABELS, max_tokens=200, cache_ttl="5m"
        ),
        "haiku-4-5": write_job(tmp_path, "haiku-4-5", model="claude-haiku-4-5"),
    }
    ran = {name: run(emulator, path) for name, path in jobs.items()}
    for name, each in ran.items():
        assert_brackets(each, near_expected=name != "warm")  # expected assumes a cold cache
    # what the old estimate missed: a warm cache bills no write at all, ...
    assert ran["warm"].costs["cache_write_1h_tokens"] == 0
    assert ran["warm"].costs["batch_cost_usd"] < ran["cached"].costs["batch_cost_usd"]
    # ... and label answers are shorter than the 16 tokens it assumed
    assert ran["cached"].costs["output_tokens"] < 16 * 120 / 2
    assert ran["long-outputs"].costs["output_tokens"] > 20 * 120


def test_a_haiku_5_5_job_over_100k_tokens_is_billed_at_the_long_context_band(
    emulator: Api, tmp_path: Path
) -> None:
    source = long_texts(tmp_path, [3_000, 120_000, 405_000, 600_000, 20_000])
    job = write_job(
        tmp_path, "long", source=source, model=HAIKU_55, cache_ttl="5m",
        instructions="Label the long document. " * 420,  # ~2,600 tokens: cached on haiku-5-5
    )  # fmt: skip
    ran = run(emulator, job)
    assert ran.costs["long_context_requests"] == 2 == ran.estimate.long_context_requests[1]
    assert ran.costs["unpriced_requests"] == 0
    assert ran.costs["batch_cost_usd"] == bill_from_raw_results(tmp_path, ran.name)
    assert_brackets(ran)


def bill_from_raw_results(tmp_path: Path, job_name: str) -> Decimal:
    """The bill at batch prices, from the raw results' usage, priced here by hand."""
    # claude-haiku-5-5, USD per MTok: input, output, 5m write, read; over 100K prompt tokens
    # (input + cache writes + cache reads) every token of the request is at the second band
    bands = {
        False: (Decimal("0.10"), Decimal("0.50"), Decimal("0.125"), Decimal("0.01")),
        True: (Decimal("0.50"), Decimal("2.50"), Decimal("0.625"), Decimal("0.05")),
    }
    total = Decimal(0)
    folder = job_paths(tmp_path / "jobs", job_name).root / "results"
    for path in folder.glob("*.jsonl"):
        for line in path.read_bytes().splitlines():
            result = orjson.loads(line)["result"]
            if result["type"] != "succeeded":
                continue
            u = result["message"]["usage"]
            write = u["cache_creation"]["ephemeral_5m_input_tokens"]
            assert u["cache_creation"]["ephemeral_1h_input_tokens"] == 0
            prompt = u["input_tokens"] + write + u["cache_read_input_tokens"]
            price_in, price_out, price_write, price_read = bands[prompt > 100_000]
            total += (
                u["input_tokens"] * price_in
                + write * price_write
                + u["cache_read_input_tokens"] * price_read
                + u["output_tokens"] * price_out
            )
    assert total > 0
    return total / 2 / 10**6


def test_a_budget_cap_stops_a_job_that_only_the_long_context_band_puts_over_it(
    emulator: Api, tmp_path: Path
) -> None:
    source = long_texts(tmp_path, [2_000, 500_000, 520_000, 1_000])
    job = write_job(tmp_path, "capped", source=source, model=HAIKU_55, cache_ttl="none")
    cost = estimate(job)
    assert cost.batch.expected is not None and cost.long_context_requests[1] == 2
    # ~255,000 input tokens: $0.0128 at the lower band (what the old estimate priced) but
    # ~$0.064 at the long-context band; a cap in between must stop the job
    cap = 0.03
    capped = write_job(
        tmp_path, "capped", source=source, model=HAIKU_55, cache_ttl="none", max_cost_usd=cap
    )
    with pytest.raises(BudgetExceededError) as refused:
        estimate(capped, enforce_budget=True)
    assert "above max_cost_usd $0.0300" in str(refused.value)
    assert "nothing was submitted" in str(refused.value)
    assert emulator.admin.audit() == []


def test_the_priming_batch_is_skipped_when_the_prefix_is_below_the_model_minimum(
    emulator: Api, tmp_path: Path
) -> None:
    # the demo prefix is ~1,200 tokens: cached by claude-sonnet-5 (1,024), not by haiku 4.5
    skipped = run(emulator, write_job(tmp_path, "haiku", rows=30, model="claude-haiku-4-5"))
    assert skipped.batches == 1
    assert not skipped.estimate.prime and not skipped.estimate.cache_used
    assert "below claude-haiku-4-5's minimum cacheable length (4,096" in (
        skipped.estimate.prime_reason
    )
    assert "priming batch: skipped" in render_estimate(
        pipeline.prepare(str(tmp_path / "haiku.yaml"), None, False, get_settings()),
        skipped.estimate,
    )
    primed = run(emulator, write_job(tmp_path, "sonnet", rows=30))
    assert primed.batches == 2 and primed.estimate.prime


def test_count_tokens_failing_for_good_gives_a_rough_estimate_and_stops_only_capped_jobs(
    emulator: Api, tmp_path: Path
) -> None:
    emulator.admin.set_faults(
        FaultConfig(http=(HttpFault(endpoint="count_tokens", status=500, count=1000),))
    )
    ran = run(emulator, write_job(tmp_path, "uncapped", rows=40))
    assert not ran.estimate.profile.counted
    assert (
        "ROUGH: count_tokens failed (APIError: count_tokens: 500" in ran.estimate.profile.notes[0]
    )
    assert ran.costs["billed_requests"] == 40  # no budget cap: the job ran
    rough = ran.estimate.batch
    assert rough.low is not None and rough.high is not None
    assert rough.low <= ran.costs["batch_cost_usd"] <= rough.high

    capped = write_job(tmp_path, "capped", rows=40, max_cost_usd=100)
    creates = len(emulator.admin.audit())
    with pytest.raises(BudgetUncheckedError, match=r"count_tokens failed.*nothing was submitted"):
        estimate(capped, enforce_budget=True)
    assert len(emulator.admin.audit()) == creates


def test_the_estimate_costs_a_constant_number_of_count_tokens_calls(
    emulator: Api, tmp_path: Path
) -> None:
    def calls() -> int:
        return sum(1 for r in emulator.admin.requests() if r["path"].endswith("count_tokens"))

    estimate(write_job(tmp_path, "small", rows=5))
    small = calls()
    estimate(write_job(tmp_path, "large", rows=693))
    assert small == calls() - small == 4


def test_pdfs_and_images_are_estimated_by_their_pages_and_pixels(
    emulator: Api, tmp_path: Path
) -> None:
    from tests.media import pdf_bytes, png_bytes

    folder = tmp_path / "scans"
    folder.mkdir()
    for pages in (1, 4, 9):
        (folder / f"report-{pages}.pdf").write_bytes(pdf_bytes(pages=pages, pad=50_000))
    (folder / "chart.png").write_bytes(png_bytes(1200, 900))
    (folder / "note.txt").write_text("A short note to read. " * 30, encoding="utf-8")
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    job = tmp_path / "scans.yaml"
    keys = {"name": "scans", "kind": "extract", "source": str(folder), "schema": schema}
    job.write_text(
        yaml.safe_dump(keys | {"instructions": "Title it. " * 500, "max_tokens": 64}),
        encoding="utf-8",
    )
    ran = run(emulator, job)
    assert_brackets(ran, near_expected=False)  # the output of a record is not known ahead
    assert "documents: 4 PDFs or images" in " ".join(ran.estimate.profile.notes)
    assert ran.estimate.profile.row_range == (0.6, 1.5)
    # the rows' input (the prefix aside) as estimated and as billed: the rules of thumb are close
    billed = ran.costs["input_tokens"] + ran.costs["cache_read_tokens"]
    assert billed > 14 * 2_000  # 14 PDF pages at the emulator's 2,000 tokens, and more
