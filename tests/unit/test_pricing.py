"""Price lookups by date and cost estimates before submit."""

from datetime import date

import pytest

from halfrate.pricing import estimate_cost, price_for, price_table


def test_every_model_has_one_price_per_date_and_sane_numbers() -> None:
    keys = [(p.model, p.effective_from) for p in price_table()]
    assert len(keys) == len(set(keys))
    for p in price_table():
        assert p.batch_discount == 0.5
        assert 0 < p.cache_read < p.input < p.cache_write_5m <= (p.cache_write_1h or 1e9)
        assert p.input < p.output


def test_price_for_picks_the_row_in_effect_on_the_day() -> None:
    before = price_for("claude-sonnet-5-5", date(2026, 10, 6))
    after = price_for("claude-sonnet-5-5", date(2026, 10, 7))
    assert before is not None and after is not None
    assert (before.cache_read, after.cache_read) == (0.20, 0.10)


def test_models_that_break_the_tenth_read_rule_are_priced_as_listed() -> None:
    reads = {
        m: (price_for(m, date(2026, 11, 24)) or pytest.fail(m)).cache_read
        for m in ("claude-opus-5-5", "claude-fable-5-1", "claude-haiku-5-5")
    }
    assert reads == {"claude-opus-5-5": 0.20, "claude-fable-5-1": 0.25, "claude-haiku-5-5": 0.01}


def test_unknown_model_or_date_before_any_price_has_no_price() -> None:
    assert price_for("claude-future-9") is None
    assert price_for("claude-haiku-5-5", date(2026, 10, 6)) is None  # released 2026-10-07


def test_estimate_with_a_primed_cache_by_hand() -> None:
    # claude-sonnet-5: input 2, output 10, 1h write 4, read 0.20 USD/MTok; batch = 50%
    est = estimate_cost(
        "claude-sonnet-5",
        n_requests=100,
        prefix_tokens=2000,
        mean_input_tokens=50,
        max_tokens=64,
        cache_ttl="1h",
        primed=True,
        expected_output_tokens=10,
        on=date(2026, 11, 24),
    )
    assert est.cache_used and est.billed_requests == 101 and est.min_cacheable_tokens == 1024
    inputs = 101 * 50 * 2
    low = inputs + 2000 * 4 + 100 * 2000 * 0.20 + 101 * 10 * 10
    high = inputs + 101 * 2000 * 4 + 101 * 64 * 10
    assert est.realtime_cost_usd_low == pytest.approx(low / 1e6)
    assert est.realtime_cost_usd_high == pytest.approx(high / 1e6)
    assert est.batch_cost_usd_low == pytest.approx(low / 2e6)
    assert est.batch_cost_usd_high == pytest.approx(high / 2e6)
    assert est.savings_usd_low == pytest.approx(low / 2e6)
    assert any("every request reads it" in a for a in est.assumptions)


def test_a_prefix_below_the_model_minimum_is_not_cached() -> None:
    est = estimate_cost(
        "claude-haiku-4-5", 10, prefix_tokens=3000, mean_input_tokens=0, max_tokens=1,
        cache_ttl="5m", primed=False, expected_output_tokens=1, on=date(2026, 11, 24),
    )  # fmt: skip
    assert not est.cache_used and est.min_cacheable_tokens == 4096
    assert (
        est.batch_cost_usd_low
        == est.batch_cost_usd_high
        == pytest.approx((10 * 3000 * 1 + 10 * 1 * 5) / 2e6)
    )
    assert any("minimum cacheable length (4,096 tokens)" in a for a in est.assumptions)


def test_unprimed_cache_writes_once_at_best() -> None:
    est = estimate_cost(
        "claude-opus-5", 3, prefix_tokens=1000, mean_input_tokens=0, max_tokens=1,
        cache_ttl="5m", primed=False, expected_output_tokens=0, on=date(2026, 11, 24),
    )  # fmt: skip
    # opus 5: 5m write 6.25, read 0.50; low = 1 write + 2 reads, high = 3 writes (+ 1 output)
    assert est.realtime_cost_usd_low == pytest.approx(1000 * (6.25 + 2 * 0.50) / 1e6)
    assert est.realtime_cost_usd_high == pytest.approx((3 * 1000 * 6.25 + 3 * 25) / 1e6)


def test_an_unpriced_model_gives_no_cost_and_says_so() -> None:
    est = estimate_cost("claude-future-9", 5, 5000, 10, 16, "1h", True)
    assert est.price is None and est.batch_cost_usd_low is None
    assert any("no price" in a for a in est.assumptions)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"cache_ttl": "2h"}, "cache_ttl '2h'"), ({"n_requests": -1}, "must be >= 0")],
)
def test_bad_arguments_are_named(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "model": "claude-sonnet-5", "n_requests": 1, "prefix_tokens": 1, "mean_input_tokens": 1,
        "max_tokens": 1, "cache_ttl": "5m", "primed": False,
    }  # fmt: skip
    with pytest.raises(ValueError, match=message):
        estimate_cost(**(args | kwargs))  # type: ignore[arg-type]
