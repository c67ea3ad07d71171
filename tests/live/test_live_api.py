"""Opt-in smoke test against the real Message Batches API (costs a fraction of a cent).

    HALFRATE_LIVE=1 ANTHROPIC_API_KEY=sk-ant-... make test PYTEST_ARGS="-m live"

It runs a 3-row label job through the same step functions the Prefect tasks call, waits for
the batch (usually minutes, at most an hour here), and checks every row lands, labelled,
with its true cost. Skipped unless both variables are set.
"""

import time
from pathlib import Path

import duckdb
import pytest

from halfrate import pipeline
from halfrate.config import JobSpec
from halfrate.settings import get_settings
from tests.conftest import LIVE_API_KEY, LIVE_BASE_URL

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(LIVE_API_KEY is None, reason="set HALFRATE_LIVE=1 and ANTHROPIC_API_KEY"),
    pytest.mark.timeout(3900),
]


def test_three_rows_through_the_real_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert LIVE_API_KEY is not None
    monkeypatch.setenv("ANTHROPIC_API_KEY", LIVE_API_KEY)
    if LIVE_BASE_URL:  # a proxy, say
        monkeypatch.setenv("ANTHROPIC_BASE_URL", LIVE_BASE_URL)
    get_settings.cache_clear()
    settings = get_settings()
    source = tmp_path / "rows.csv"
    source.write_text(
        "id,text\n1,Play some jazz on Spotify\n2,Will it snow in Oslo tomorrow?\n"
        "3,Book a table for two at an Italian place tonight\n"
    )
    spec = JobSpec(
        name="live-smoke",
        source=str(source),
        model="claude-haiku-4-5",
        max_tokens=32,
        instructions="Classify the request as one of the allowed labels.",
        labels=["play_music", "get_weather", "book_restaurant"],
        cache_ttl="none",
        max_attempts=1,
    )
    job = pipeline.prepare(None, spec, False, settings)
    extracted = pipeline.extract(job, settings)
    cost = pipeline.estimate(job, settings)  # before the build: it decides the priming batch
    assert cost is not None and cost.profile.counted
    pipeline.build(job, settings, 1)
    pipeline.submit(job, settings, 1, "main")
    deadline = time.monotonic() + 3600
    while not pipeline.check(job, settings, 1).all_ended:
        assert time.monotonic() < deadline, "the batch did not end within an hour"
        time.sleep(30)
    pipeline.download(job, settings, 1)
    assert pipeline.load(job, settings, extracted).loaded
    summary = pipeline.summarize(job, settings)
    assert summary.rows == 3 and summary.final_states == {"succeeded": 3}
    assert summary.batch_cost_usd is not None and summary.batch_cost_usd > 0
    low, high = cost.batch.low, cost.batch.high  # the estimate brackets the real bill
    assert low is not None and high is not None and low <= summary.batch_cost_usd <= high
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        labels = con.execute("select row_id, label from labels order by row_id").fetchall()
    assert [label for _, label in labels] == ["play_music", "get_weather", "book_restaurant"]
