"""The estimate's cost model (pure): low / expected / high by hand, bands, priming, money text."""

import random
from datetime import date

import polars as pl
import pytest

from halfrate.cost_model import TokenProfile, estimate_cost, plan_prime
from halfrate.summary import format_usd

DAY = date(2026, 11, 24)


def profile(prefix: float, output: tuple[float, float, float], **kw: object) -> TokenProfile:
    return TokenProfile(prefix_tokens=prefix, output_tokens=output, **kw)  # type: ignore[arg-type]


def test_a_primed_cache_by_hand() -> None:
    # claude-sonnet-5 USD/MTok: input 2, output 10, 1h write 4, read 0.20; batch = 50%
    rows = pl.Series([50.0] * 100)
    p = profile(2000, (5, 10, 64))
    est = estimate_cost("claude-sonnet-5", rows, p, "1h", prime=True, on=DAY)
    assert est.cache_used and est.min_cacheable_tokens == 1024 and est.n_requests == 100
    inputs = 100 * 50 * 2
    low = inputs + 100 * 2000 * 0.20 + 100 * 5 * 10  # a warm cache: every request reads
    expected = inputs + 2000 * 4 + 99 * 2000 * 0.20 + 100 * 10 * 10  # the prime writes once
    high = inputs + 100 * 2000 * 4 + 100 * 64 * 10  # every request writes
    assert est.realtime.low == pytest.approx(low / 1e6)
    assert est.realtime.expected == pytest.approx(expected / 1e6)
    assert est.realtime.high == pytest.approx(high / 1e6)
    assert est.batch.expected == pytest.approx(expected / 2e6)
    assert est.savings.expected == pytest.approx(expected / 2e6)
    assert est.long_context_requests == (0, 0, 0)


def test_without_priming_every_request_is_expected_to_write() -> None:
    # claude-opus-5: 5m write 6.25, read 0.50; requests of a batch do not see each other's writes
    est = estimate_cost(
        "claude-opus-5", pl.Series([0.0] * 3), profile(1000, (1, 1, 1)), "5m", False, on=DAY
    )
    assert est.realtime.low == pytest.approx((3 * 1000 * 0.50 + 3 * 25) / 1e6)
    assert est.realtime.expected == est.realtime.high
    assert est.realtime.high == pytest.approx((3 * 1000 * 6.25 + 3 * 25) / 1e6)


def test_a_prefix_below_the_model_minimum_is_not_cached() -> None:
    est = estimate_cost(
        "claude-haiku-4-5", pl.Series([0.0] * 10), profile(3000, (1, 1, 1)), "5m", True, on=DAY
    )
    assert not est.cache_used and est.min_cacheable_tokens == 4096
    assert est.batch.low == est.batch.expected == est.batch.high
    assert est.batch.high == pytest.approx((10 * 3000 * 1 + 10 * 1 * 5) / 2e6)
    assert any("minimum cacheable length (4,096 tokens)" in a for a in est.assumptions)


def test_rows_over_100k_prompt_tokens_are_priced_at_the_long_context_band() -> None:
    # claude-haiku-5-5: <=100K in 0.10 out 0.50 5m 0.125 read 0.01; >100K 0.50/2.50/0.625/0.05
    rows = pl.Series([1_000.0, 97_000.0, 150_000.0])  # + 2,500 prefix: 3,500 / 99,500 / 152,500
    p = profile(2500, (10, 10, 10), row_range=(0.9, 1.1))
    est = estimate_cost("claude-haiku-5-5", rows, p, "5m", prime=True, on=DAY)
    # high: rows x 1.1 -> 106,700 + 2,500 crosses too; low: rows x 0.9 -> only the last
    assert est.long_context_requests == (1, 1, 2)
    expected = (
        (1_000 * 0.10 + 2_500 * 0.125 + 10 * 0.50)  # the prime request writes
        + (97_000 * 0.10 + 2_500 * 0.01 + 10 * 0.50)
        + (150_000 * 0.50 + 2_500 * 0.05 + 10 * 2.50)  # every token at the long band
    )
    assert est.realtime.expected == pytest.approx(expected / 1e6)
    high = (
        (1_100 * 0.10 + 2_500 * 0.125 + 10 * 0.50)
        + (106_700 * 0.50 + 2_500 * 0.625 + 10 * 2.50)
        + (165_000 * 0.50 + 2_500 * 0.625 + 10 * 2.50)
    )
    assert est.realtime.high == pytest.approx(high / 1e6)
    assert any("over 100,000 prompt tokens" in a for a in est.assumptions)


def test_an_unpublished_band_price_makes_the_figures_that_need_it_unpriced() -> None:
    # no 1h cache-write price for haiku-5-5 prompts over 100K tokens
    rows = pl.Series([150_000.0, 10.0])
    est = estimate_cost("claude-haiku-5-5", rows, profile(2500, (1, 1, 1)), "1h", True, on=DAY)
    assert est.batch.low is not None  # reads only: priced
    assert est.batch.high is None  # every request writes the 1h cache: unknown
    assert est.unpriced and "1h cache write" in est.unpriced[0] and "100,000" in est.unpriced[0]


def test_an_unpriced_model_gives_no_cost_and_says_so() -> None:
    est = estimate_cost("claude-future-9", pl.Series([10.0]), profile(5000, (1, 8, 16)), "1h", True)
    assert est.batch.expected is None and est.realtime.high is None
    assert "no price" in est.unpriced[0]


def test_low_expected_high_are_ordered_whatever_the_job() -> None:
    rng = random.Random(7)
    for _ in range(300):
        model = rng.choice(["claude-haiku-5-5", "claude-sonnet-5", "claude-haiku-4-5"])
        rows = pl.Series([rng.uniform(0, 150_000) for _ in range(rng.randint(1, 6))])
        low_out = rng.uniform(1, 20)
        p = TokenProfile(
            prefix_tokens=rng.choice([0, 500, 1500, 5000]),
            prefix_range=rng.choice([(1.0, 1.0), (0.5, 2.0)]),
            row_range=rng.choice([(0.9, 1.1), (0.5, 2.0)]),
            output_tokens=(low_out, low_out * 2, low_out * 4),
        )
        ttl = rng.choice(["none", "5m"])
        est = estimate_cost(model, rows, p, ttl, rng.random() < 0.5, on=DAY)
        b = est.batch
        assert b.low is not None and b.expected is not None and b.high is not None
        assert b.low <= b.expected + 1e-12 <= b.high + 2e-12, (model, rows.to_list(), p, ttl)


@pytest.mark.parametrize(
    ("requested", "ttl", "n", "prefix", "model", "sent", "why"),
    [
        (True, "1h", 100, 1200, "claude-sonnet-5", True, "warm cache"),
        (True, "1h", 100, 1200, "claude-haiku-4-5", False, "minimum cacheable length (4,096"),
        (True, "none", 100, 5000, "claude-sonnet-5", False, "caching is off"),
        (True, "1h", 1, 5000, "claude-sonnet-5", False, "fewer than two rows"),
        (False, "1h", 100, 5000, "claude-sonnet-5", False, "prime_cache is off"),
    ],
)
def test_the_priming_batch_is_sent_only_when_the_cache_will_be_used(
    requested: bool, ttl: str, n: int, prefix: int, model: str, sent: bool, why: str
) -> None:
    prime, reason = plan_prime(requested, ttl, n, profile(prefix, (1, 1, 1)), model)
    assert prime is sent and why in reason


def test_a_rough_prefix_is_primed_unless_it_is_surely_too_short() -> None:
    rough = profile(700, (1, 1, 1), prefix_range=(0.5, 2.0))  # could be 1,400 tokens
    assert plan_prime(True, "1h", 10, rough, "claude-sonnet-5")[0]
    assert not plan_prime(True, "1h", 10, rough, "claude-haiku-4-5")[0]


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="cache_ttl '2h'"):
        estimate_cost("claude-sonnet-5", pl.Series([1.0]), profile(1, (1, 1, 1)), "2h", False)
    with pytest.raises(ValueError, match="row_tokens must be >= 0"):
        estimate_cost("claude-sonnet-5", pl.Series([-1.0]), profile(1, (1, 1, 1)), "5m", False)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "unpriced"),
        (0, "$0.00"),
        (1234.5678, "$1,234.57"),
        (1, "$1.00"),
        (0.99999, "$1.00"),
        (0.117088, "$0.1171"),
        (0.0000123, "$0.000012"),
        (-0.5, "-$0.5000"),
    ],
)
def test_money_is_rounded_for_people(value: float | None, text: str) -> None:
    assert format_usd(value) == text


def test_two_amounts_compared_show_enough_digits_to_differ() -> None:
    # issue 8 item 9: a refusal printed "$0.00 ... above $0.00"
    assert (format_usd(0.000035, versus=0.000001), format_usd(0.000001, versus=0.000035)) == (
        "$0.000035",
        "$0.0000010",
    )
    assert (format_usd(0.004, versus=0.0041), format_usd(12.001, versus=12)) == (
        "$0.0040",
        "$12.001",
    )
