"""The pilot's projection arithmetic: fits, prices, retries and the bootstrap interval."""

import random

import polars as pl
import pytest

from halfrate import projection
from halfrate.pricing import price_list
from halfrate.projection import Job, Usage, fit, project, request_cost, rest_cost, tries

SONNET = price_list("claude-sonnet-5")  # input 2, output 10, 1h write 4, read 0.2 ($/MTok)
HAIKU_55 = price_list("claude-haiku-5-5")  # two bands; the long one has no 1h write price


def usage(x: float, out: int, *, billed: bool = True, retry: bool = False) -> Usage:
    """A request whose input is 10 + x/4 tokens and whose 1,000-token prefix is read."""
    if not billed:
        return Usage(x=x, billed=False, retry=retry)
    return Usage(x=x, billed=True, retry=retry, input_tokens=int(10 + x / 4), cache_read=1000,
                 output_tokens=out)  # fmt: skip


def rest(*sizes: float) -> pl.DataFrame:
    return pl.DataFrame({"x": list(sizes)}).group_by("x").agg(n=pl.len())


def test_a_request_is_priced_at_batch_prices_per_token_kind() -> None:
    u = Usage(x=0, billed=True, retry=False, input_tokens=100, cache_write_1h=1000,
              cache_read=2000, output_tokens=50)  # fmt: skip
    cost = request_cost(SONNET, u)
    assert not isinstance(cost, str)
    micro = 100 * 2 + 1000 * 4 + 2000 * 0.2 + 50 * 10
    assert cost.realtime == pytest.approx(micro / 1e6)
    assert cost.batch == pytest.approx(micro / 1e6 / 2)


def test_an_unpublished_price_is_named_not_guessed() -> None:
    long = Usage(x=0, billed=True, retry=False, input_tokens=150_000, cache_write_1h=10)
    assert "no 1h cache write price for prompts over 100,000" in str(request_cost(HAIKU_55, long))


def test_the_fit_recovers_lines_shares_and_rates() -> None:
    usages = [usage(x, out=int(5 + x / 10)) for x in (40, 80, 120, 400, 800)]
    usages += [usage(100, 0, billed=False, retry=True)]
    f = fit(usages)
    assert f is not None
    (a_in, b_in), (a_out, b_out) = f.input_line, f.output_line
    assert (a_in, b_in) == (pytest.approx(10), pytest.approx(0.25))
    assert (a_out, b_out) == (pytest.approx(5), pytest.approx(0.1))
    assert f.prefix == 1000 and f.prefix_shares == (1.0, 0.0, 0.0)
    assert (f.billed, f.retry) == (pytest.approx(5 / 6), pytest.approx(1 / 6))


def test_without_variation_the_fit_is_the_mean_and_without_billing_none() -> None:
    f = fit([usage(50, 10), usage(50, 30)])
    assert f is not None and f.output_line == (20.0, 0.0)
    assert fit([usage(1, 0, billed=False)]) is None


def test_the_rest_is_priced_from_the_fit_capped_at_max_tokens() -> None:
    f = fit([usage(x, out=int(x)) for x in (100, 200, 300, 400)])  # output = x tokens
    assert f is not None
    got = rest_cost(f, rest(100, 100, 1000), SONNET, max_tokens=500)
    inputs = 2 * (10 + 25) + (10 + 250)
    outputs = 2 * 100 + 500  # the 1,000-character row is capped at max_tokens
    micro = inputs * 2 + 3 * 1000 * 0.2 + outputs * 10
    assert got == pytest.approx(micro / 1e6 / 2)
    assert rest_cost(f, rest(), SONNET, 500) == 0.0


def test_retries_add_what_the_retried_share_costs_again() -> None:
    assert tries(0.0, 3) == 1.0
    assert tries(0.5, 3) == pytest.approx(1.75)
    assert tries(0.5, 1) == 1.0


def whole(rest_frame: pl.DataFrame, known: float = 0.01, retried: int = 0) -> Job:
    return Job(rest_frame, SONNET, 500, 3, known, retried, 0.0001)


def test_the_projection_is_the_known_cost_plus_the_rest_with_an_interval_around_it() -> None:
    rng = random.Random(7)
    usages = [usage(x, out=int(x / 8 + rng.gauss(0, 5)) + 10) for x in range(40, 440, 10)]
    job = whole(rest(*range(40, 4040, 10)))
    low, expected, high = project(usages, job, "seed")  # type: ignore[misc]
    f = fit(usages)
    assert f is not None
    assert expected == pytest.approx(0.01 + rest_cost(f, job.rest, SONNET, 500))  # type: ignore[operator]
    assert low < expected < high
    assert project(usages, job, "seed") == (low, expected, high)  # seeded: reproducible
    flat = [usage(x, out=20) for x in range(40, 440, 10)]
    low_flat, _, high_flat = project(flat, job, "seed")  # type: ignore[misc]
    assert high_flat - low_flat < (high - low) / 5  # a steady pilot pins the cost down


def test_the_projection_counts_the_retries_the_pilot_saw() -> None:
    usages = [usage(100, 20)] * 9 + [usage(100, 0, billed=False, retry=True)]
    once = [usage(100, 20)] * 10
    job = whole(rest(*[100] * 90), retried=1)
    expected = project(usages, job, "s")
    baseline = project(once, whole(rest(*[100] * 90)), "s")
    assert isinstance(expected, tuple) and isinstance(baseline, tuple)
    f = fit(usages)
    assert f is not None
    rest_once = rest_cost(f, job.rest, SONNET, 500)
    assert isinstance(rest_once, float)
    sends = tries(0.1, 3)  # 1 + 0.1 + 0.01
    again = 1 * 0.0001 * 0.9 * tries(0.1, 2)
    assert expected[1] == pytest.approx(0.01 + rest_once * 0.9 * sends + again)
    assert expected[1] > baseline[1] * 0.99  # a retried share costs about the same again


def test_a_pilot_without_billed_requests_or_prices_projects_nothing() -> None:
    assert project([usage(1, 0, billed=False)], whole(rest(1)), "s") is None
    long = [Usage(x=10, billed=True, retry=False, input_tokens=150_000, cache_write_1h=10)]
    job = Job(rest(10), HAIKU_55, 500, 3, 0.0, 0, 0.0)
    assert "no 1h cache write price" in str(project(long, job, "s"))


def test_the_percentile_interpolates() -> None:
    assert projection._percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.5) == 3.0
    assert projection._percentile([0.0, 10.0], 0.05) == pytest.approx(0.5)


def test_a_cold_cache_prices_the_rest_writing_the_prefix_again() -> None:
    usages = [usage(100, 20)] * 10  # every request read the 1,000-token prefix
    job = whole(rest(*[100] * 90))
    warm = project(usages, job, "s")
    cold = projection.cold_cache(usages, job, "1h")
    assert isinstance(warm, tuple) and isinstance(cold, float)
    assert cold - warm[1] == pytest.approx(90 * 1000 * (4 - 0.2) / 1e6 / 2)  # 1h write vs read
    assert projection.cold_cache([usage(100, 20, billed=False)], job, "1h") is None
    uncached = [Usage(x=100, billed=True, retry=False, input_tokens=1035, output_tokens=20)]
    assert projection.cold_cache(uncached, job, "1h") is None  # nothing was read


def test_in_real_time_the_rest_reads_the_cache_at_full_price() -> None:
    first = Usage(x=100, billed=True, retry=False, input_tokens=35, cache_write_1h=1000,
                  output_tokens=20)  # fmt: skip
    usages = [first] + [usage(100, 20)] * 9  # real time: the first request alone wrote
    job = Job(rest(*[100] * 90), SONNET, 500, 3, 0.0, 0, 0.0, realtime=True)
    expected = project(usages, job, "s")
    assert isinstance(expected, tuple)
    micro = 90 * (35 * 2 + 1000 * 0.2 + 20 * 10)  # every remaining request reads, no discount
    assert expected[1] == pytest.approx(micro / 1e6)
    assert projection.cold_cache(usages, job, "1h") is None
