"""Price bands by date and prompt length, model facts, and the bad-table errors."""

from datetime import date

import pytest

from halfrate import pricing
from halfrate.pricing import min_cacheable_tokens, price_for, price_list, price_table
from halfrate_emulator import models as emulator_models

DAY = date(2026, 11, 24)


def test_every_model_has_one_price_per_date_and_band_and_sane_numbers() -> None:
    keys = [(p.model, p.effective_from, p.prompt_tokens_over) for p in price_table()]
    assert len(keys) == len(set(keys))
    for p in price_table():
        assert p.batch_discount == 0.5
        assert p.cache_read is not None and p.cache_write_5m is not None
        assert 0 < p.cache_read < p.input < p.cache_write_5m <= (p.cache_write_1h or 1e9)
        assert p.input < p.output


def test_price_for_picks_the_row_in_effect_on_the_day() -> None:
    before = price_for("claude-sonnet-5-5", date(2026, 10, 6))
    after = price_for("claude-sonnet-5-5", date(2026, 10, 7))
    assert before is not None and after is not None
    assert (before.cache_read, after.cache_read) == (0.20, 0.10)


def test_haiku_5_5_bills_prompts_over_100k_tokens_at_the_long_context_band() -> None:
    bands = price_list("claude-haiku-5-5", DAY)
    assert [b.prompt_tokens_over for b in bands] == [0, 100_000]
    at_limit = price_for("claude-haiku-5-5", DAY, prompt_tokens=100_000)
    over = price_for("claude-haiku-5-5", DAY, prompt_tokens=100_001)
    assert at_limit is not None and over is not None
    assert (at_limit.input, at_limit.output, at_limit.cache_read) == (0.10, 0.50, 0.01)
    assert (over.input, over.output, over.cache_write_5m, over.cache_read) == (
        0.50,
        2.50,
        0.625,
        0.05,
    )
    assert over.cache_write_1h is None  # not published: unpriced, never guessed
    # models without a second band price every prompt length alike
    assert price_for("claude-sonnet-5", DAY, 500_000) == price_for("claude-sonnet-5", DAY)


def test_models_that_break_the_tenth_read_rule_are_priced_as_listed() -> None:
    reads = {
        m: (price_for(m, DAY) or pytest.fail(m)).cache_read
        for m in ("claude-opus-5-5", "claude-fable-5-1", "claude-haiku-5-5")
    }
    assert reads == {"claude-opus-5-5": 0.20, "claude-fable-5-1": 0.25, "claude-haiku-5-5": 0.01}


def test_unknown_model_or_date_before_any_price_has_no_price() -> None:
    assert price_for("claude-future-9") is None
    assert price_for("claude-haiku-5-5", date(2026, 10, 6)) is None  # released 2026-10-07


def test_every_priced_model_has_a_minimum_cacheable_length_shared_with_the_emulator() -> None:
    facts = pricing.model_facts()
    for p in price_table():
        assert pricing.base_model(p.model) in facts, f"{p.model}: add it to halfrate/models.csv"
    # the emulator reads the same file: one table, so the two cannot disagree
    assert emulator_models.min_cacheable_table() == {
        m: f.min_cacheable_tokens for m, f in facts.items()
    }
    for model in {p.model for p in price_table()}:
        assert min_cacheable_tokens(model) == emulator_models.min_cacheable_tokens(model)
    assert min_cacheable_tokens("claude-haiku-4-5-20251001") == 4096  # dated ids too
    assert min_cacheable_tokens("claude-haiku-5-5") == 2048
    assert min_cacheable_tokens("claude-future-9") == 4096  # unknown: the strictest


def _table_from(monkeypatch: pytest.MonkeyPatch, lines: list[str]) -> None:
    header = (
        "model,effective_from,prompt_tokens_over,input,output,cache_write_5m,cache_write_1h,"
        "cache_read,batch_discount,source"
    )
    import csv

    rows = list(csv.DictReader([header, *lines]))
    parsed = [(n, {k: v or None for k, v in r.items()}) for n, r in enumerate(rows, start=2)]
    monkeypatch.setattr(pricing, "_read_csv", lambda name: parsed)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["m,2026-01-01,0,0.12345,1,1,2,0.1,0.5,s"], "line 2: at most 4 decimals"),
        (["m,2026-01-01,0,1,5,1.25,2,0.1,0.455,s"], "line 2: at most 4 decimals"),
        (["m,2026-01-01,0,1,five,1.25,2,0.1,0.5,s"], "line 2: .*output"),
        (["m,2026-01-01,100000,1,5,1.25,2,0.1,0.5,s"], "without a prompt_tokens_over=0 band"),
        (["m,2026-01-01,0,1,5,1,2,0.1,0.5,s", "m,2026-01-01,0,1,5,1,2,0.1,0.5,s"], "duplicate"),
    ],
    ids=["price-too-precise", "discount-too-precise", "not-a-number", "no-base-band", "dup"],
)
def test_a_bad_price_table_names_the_line_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, lines: list[str], message: str
) -> None:
    _table_from(monkeypatch, lines)
    with pytest.raises(ValueError, match=message):
        price_table.__wrapped__()
