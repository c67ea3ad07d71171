"""The pilot's sample, its request files, its planning and its budget checks (no API)."""

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from halfrate.build import build_requests
from halfrate.config import JobConfigError, parse_job
from halfrate.cost_model import Bracket, CostEstimate, TokenProfile
from halfrate.estimate import BudgetExceededError, BudgetUncheckedError
from halfrate.ledger import Ledger, RequestFile
from halfrate.pilot import (
    PILOT_KEY,
    PilotBudgetError,
    PilotError,
    check_pilot_budget,
    check_projection,
    pilot_share,
    plan,
    planned_size,
    render_report,
    sample_row_ids,
    sent_first_share,
)
from halfrate.pilot_report import PilotMeasure, PilotReport
from halfrate.settings import Settings
from halfrate.workspace import JobPaths
from tests.unit.test_build import lines_of, make_job, rows_file


@pytest.fixture
def paths(tmp_path: Path) -> JobPaths:
    return JobPaths(tmp_path / "job")


@pytest.fixture
def ledger(paths: JobPaths) -> Ledger:
    return Ledger.create(paths.ledger)


def ids(n: int) -> list[str]:
    return [f"r{i:04d}" for i in range(n)]


def test_the_sample_is_reproducible_spread_across_the_source_and_never_the_first_row(
    tmp_path: Path,
) -> None:
    rows = rows_file(tmp_path, ids(1000))
    sample = sample_row_ids(rows, 40, "seed-a")
    assert sample == sample_row_ids(rows, 40, "seed-a")  # the same on every rerun
    assert sample != sample_row_ids(rows, 40, "seed-b")  # seeded, not fixed positions
    positions = [int(r[1:]) for r in sample]
    assert len(set(positions)) == 40 and 0 not in positions
    assert positions != list(range(1, 41))  # not the first N
    # one row from each of 40 equal slices of rows 1..999: spread over the whole source
    slices = Counter((p - 1) * 40 // 999 for p in positions)
    assert slices == Counter(range(40))
    assert positions == sorted(positions)


@pytest.mark.parametrize(("n_rows", "asked", "expected"), [(5, 40, 4), (1, 3, 0), (0, 3, 0)])
def test_a_sample_larger_than_the_job_takes_every_row_but_the_first(
    tmp_path: Path, n_rows: int, asked: int, expected: int
) -> None:
    sample = sample_row_ids(rows_file(tmp_path, ids(n_rows)), asked, "s")
    assert sorted(sample) == ids(n_rows)[1:][:expected]


def test_the_pilot_rows_get_their_own_files_and_every_row_is_in_exactly_one(
    tmp_path: Path, paths: JobPaths, ledger: Ledger
) -> None:
    row_ids = ids(23)
    rows = rows_file(tmp_path, row_ids)
    sample = sample_row_ids(rows, 7, "s")
    settings = Settings(max_requests_per_batch=5)
    files = build_requests(make_job(tmp_path), paths, ledger, 1, rows, settings, True, sample)
    assert [(f.path, f.part, f.purpose, f.n_requests) for f in files] == [
        ("requests/a1/prime.jsonl", 0, "prime", 1),
        ("requests/a1/pilot-0001.jsonl", 1, "pilot", 5),
        ("requests/a1/pilot-0002.jsonl", 2, "pilot", 2),
        ("requests/a1/part-0001.jsonl", 1, "main", 5),
        ("requests/a1/part-0002.jsonl", 2, "main", 5),
        ("requests/a1/part-0003.jsonl", 3, "main", 5),
    ]
    assert [r.file for r in ledger.records(attempt=1)] == files  # the ledger's order too
    sent: dict[str, list[str]] = {f.purpose: [] for f in files}
    for f in files:
        sent[f.purpose] += [json.loads(line)["custom_id"][3:] for line in lines_of(paths, f)]
        index = pl.read_parquet(paths.index_file(f.path))["row_id"].to_list()
        assert index == [json.loads(line)["custom_id"][3:] for line in lines_of(paths, f)]
    assert sent["prime"] == ["r0000"]
    assert sent["pilot"] == sample  # in source order
    assert sent["main"] == [r for r in row_ids[1:] if r not in sample]
    assert sorted(sent["prime"] + sent["pilot"] + sent["main"]) == row_ids  # each once


def test_without_priming_the_first_row_goes_with_the_main_files(
    tmp_path: Path, paths: JobPaths, ledger: Ledger
) -> None:
    rows = rows_file(tmp_path, ids(10))
    sample = sample_row_ids(rows, 3, "s")
    files = build_requests(make_job(tmp_path), paths, ledger, 1, rows, Settings(), False, sample)
    assert [(f.purpose, f.n_requests) for f in files] == [("pilot", 3), ("main", 7)]
    first = json.loads(lines_of(paths, files[1])[0])["custom_id"]
    assert first == "a1_r0000"


def test_a_rebuild_with_a_pilot_gives_the_same_bytes(tmp_path: Path) -> None:
    rows = rows_file(tmp_path, ids(50))
    sample = sample_row_ids(rows, 9, "s")

    def built(folder: str) -> list[RequestFile]:
        paths = JobPaths(tmp_path / folder)
        return build_requests(
            make_job(tmp_path), paths, Ledger.create(paths.ledger), 1, rows, Settings(), True,
            sample,
        )  # fmt: skip

    assert [(f.path, f.sha256) for f in built("one")] == [(f.path, f.sha256) for f in built("two")]


def test_the_pilot_size_comes_from_the_job_or_a_recovered_ledger(
    tmp_path: Path, paths: JobPaths, ledger: Ledger
) -> None:
    job = make_job(tmp_path)
    assert planned_size(job, ledger) == 0
    assert plan(job, ledger, None).pilot_rows == 40  # the default
    assert plan(job, ledger, 25).pilot_rows == 25
    assert plan(job.model_copy(update={"pilot_rows": 12}), ledger, None).pilot_rows == 12
    assert planned_size(job.model_copy(update={"pilot_rows": 12}), ledger) == 12
    with pytest.raises(PilotError, match="at least one row"):
        plan(job, ledger, 0)
    ledger.set_meta(PILOT_KEY, "7")  # `halfrate recover` found a pilot of 7 rows
    assert planned_size(job.model_copy(update={"pilot_rows": 12}), ledger) == 7
    rows = rows_file(tmp_path, ids(30))
    build_requests(job, paths, ledger, 1, rows, Settings(), True, sample_row_ids(rows, 7, "s"))
    assert plan(job, ledger, 5) == job  # allowed: the built pilot stays as it is


def test_a_pilot_is_refused_once_the_job_was_built_without_one(
    tmp_path: Path, paths: JobPaths, ledger: Ledger
) -> None:
    job = make_job(tmp_path)
    build_requests(job, paths, ledger, 1, rows_file(tmp_path, ids(8)), Settings(), True)
    with pytest.raises(PilotError, match=r"started without a pilot.*send rows twice"):
        plan(job, ledger, 4)


def test_pilot_rows_is_checked_and_not_part_of_the_jobs_identity(tmp_path: Path) -> None:
    base = {"name": "t", "source": "x.csv", "instructions": "Label.", "labels": ["a", "b"]}
    with pytest.raises(JobConfigError, match="pilot_rows: Input should be greater than or"):
        parse_job(base | {"pilot_rows": 0}, "t.yaml")
    with pytest.raises(JobConfigError, match="pilot_rows: Input should be a valid integer"):
        parse_job(base | {"pilot_rows": "some"}, "t.yaml")
    assert parse_job(base | {"pilot_rows": 30}).fingerprint() == parse_job(base).fingerprint()


def test_the_pilot_share_counts_the_priming_row(
    tmp_path: Path, paths: JobPaths, ledger: Ledger
) -> None:
    rows = rows_file(tmp_path, ids(100))
    assert pilot_share(rows, 19) == pytest.approx(0.20)
    assert pilot_share(rows, 500) == 1.0
    job = make_job(tmp_path)
    assert sent_first_share(job, ledger, rows) is None  # no pilot planned
    piloted = job.model_copy(update={"pilot_rows": 19})
    assert sent_first_share(piloted, ledger, rows) == pytest.approx(0.20)
    build_requests(job, paths, ledger, 1, rows, Settings(), True, sample_row_ids(rows, 9, "s"))
    assert sent_first_share(job, ledger, rows) == pytest.approx(0.10)  # what was built


def test_even_the_pilot_must_fit_the_budget(tmp_path: Path) -> None:
    profile = TokenProfile(prefix_tokens=1200, output_tokens=(5, 7, 64))
    estimate = CostEstimate(
        model="claude-sonnet-5", priced_on=datetime.now(UTC).date(), n_requests=100,
        cache_ttl="1h", min_cacheable_tokens=1024, cache_used=True, prime=True,
        prime_reason="sent first", profile=profile, long_context_requests=(0, 0, 0),
        batch=Bracket(low=0.25, expected=0.5, high=2.0),  # $0.50 expected for the whole job
        realtime=Bracket(low=0.5, expected=1.0, high=4.0), unpriced=(), assumptions=(),
    )  # fmt: skip
    check_pilot_budget(make_job(tmp_path, max_cost_usd=0.2), estimate, 0.2)  # $0.10: fits
    with pytest.raises(BudgetExceededError) as caught:
        check_pilot_budget(make_job(tmp_path, max_cost_usd=0.2), estimate, 0.5)
    assert str(caught.value) == (
        "job 't': even its pilot (50.0% of the rows) is expected to cost $0.2500 at batch "
        "prices, above max_cost_usd $0.2000; nothing was submitted. Raise max_cost_usd, or "
        "pilot fewer rows (pilot_rows, --rows)."
    )
    rough = estimate.model_copy(
        update={"profile": profile.model_copy(update={"counted": False, "notes": ("ROUGH",)})}
    )
    with pytest.raises(BudgetUncheckedError, match="count_tokens failed"):
        check_pilot_budget(make_job(tmp_path, max_cost_usd=0.2), rough, 0.1)


def report(expected: float | None, problems: tuple[str, ...] = ()) -> PilotReport:
    measure = PilotMeasure(
        rows=20, requests=20, billed_requests=20, output_tokens_mean=31.5,
        output_tokens_p95=58.0, input_tokens_mean=900.0, cache_hit_rate=0.9,
        invalid_output_rate=0.05, retry_rate=0.05, cost_usd=0.01, cost_per_row_usd=0.0005,
    )  # fmt: skip
    low = None if expected is None else expected * 0.9
    high = None if expected is None else expected * 1.1
    return PilotReport(
        job_name="t",
        model="claude-sonnet-5",
        made_at=datetime.now(UTC),
        pilot=measure,
        known_usd=0.012,
        remaining_requests=480,
        projected=Bracket(low=low, expected=expected, high=high),
        static=Bracket(low=0.1, expected=0.4, high=2.0),
        problems=problems,
    )


def test_the_projection_is_checked_against_the_budget(tmp_path: Path) -> None:
    job = make_job(tmp_path, max_cost_usd=0.2)
    check_projection(job, report(0.19))
    with pytest.raises(PilotBudgetError) as caught:
        check_projection(job, report(0.25))
    message = str(caught.value)
    assert "the pilot projects $0.2500 for the whole job" in message
    assert "above max_cost_usd $0.2000" in message and "480 requests) were not sent" in message
    assert "20 rows are done and kept" in message and "static estimate said $0.4000" in message
    assert isinstance(caught.value, BudgetExceededError)  # exit code 2, never retried
    with pytest.raises(BudgetUncheckedError, match=r"cannot be priced \(no price"):
        check_projection(job, report(None, ("no price",)))
    check_projection(make_job(tmp_path), report(99.0))  # no budget: nothing to check


def test_the_report_renders_without_markup_surprises() -> None:
    markdown = render_report(report(0.25, ("a | pipe",)))
    assert "| projected job cost | $0.2500 ($0.2250 – $0.2750), 90% interval |" in markdown
    assert "| output tokens per row | mean 31.5, p95 58.0 |" in markdown
    assert "| static estimate | $0.4000 ($0.1000 – $2.00) |" in markdown
    assert "a \\| pipe" in markdown


def test_a_sampled_row_sends_all_its_requests_in_the_pilot(
    tmp_path: Path, paths: JobPaths, ledger: Ledger
) -> None:
    """A kind with several requests per row (judge's pairwise ab/ba): rows, not lines, are
    sampled, and every request of a sampled row is in the pilot."""
    row_ids = [r for r in ids(12) for _ in (0, 1)]
    rows = tmp_path / "keyed.parquet"
    pl.DataFrame(
        {"row_id": row_ids, "text": [f"t {r}" for r in row_ids], "request": ["ab", "ba"] * 12}
    ).write_parquet(rows)
    sample = sample_row_ids(rows, 4, "s")
    assert len(sample) == 4 and "r0000" not in sample
    files = build_requests(make_job(tmp_path), paths, ledger, 1, rows, Settings(), True, sample)
    custom = {
        f.purpose: [json.loads(line)["custom_id"] for line in lines_of(paths, f)] for f in files
    }
    assert custom["prime"] == ["a1ab_r0000"]
    assert custom["pilot"] == [f"a1{k}_{r}" for r in sample for k in ("ab", "ba")]
    assert "a1ba_r0000" in custom["main"] and len(custom["main"]) == 24 - 1 - 8
    assert pilot_share(rows, 4) == pytest.approx(5 / 12)
