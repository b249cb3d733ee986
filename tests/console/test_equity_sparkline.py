"""The equity sparkline's scale: centred on the data, at least ±0.5 % of the equity high, so a
0.01 % wiggle stays a flat line near the middle and only a real move reaches the edges."""

from __future__ import annotations

from console.widgets.balances import BARS, bar_levels, equity_scale, scale_words

EQUITY = 205_000.0
MIDDLE = (len(BARS) - 1) / 2


def test_a_move_of_a_hundredth_of_a_percent_stays_near_the_middle():
    samples = [EQUITY, EQUITY * 1.0001, EQUITY * 0.99995, EQUITY * 1.0001]
    low, high, half_pct = equity_scale(samples)
    assert half_pct == 0.5 and scale_words(half_pct) == "±0.5%"
    levels = bar_levels(samples, 20, low, high)
    assert len(levels) == len(samples)
    assert all(abs(level - MIDDLE) <= 1 for level in levels)  # no cliff: one bar height at most
    assert len(set(levels)) == 1


def test_a_move_of_five_percent_spans_the_whole_height():
    samples = [EQUITY * (1 + 0.05 * i / 9) for i in range(10)]
    low, high, half_pct = equity_scale(samples)
    assert round(half_pct, 2) == 2.44 and scale_words(half_pct) == "±2.4%"  # 5 % of the start, centred
    levels = bar_levels(samples, 20, low, high)
    assert levels[0] == 0 and levels[-1] == len(BARS) - 1
    assert levels == sorted(levels)


def test_the_scale_is_centred_on_the_data():
    low, high, _ = equity_scale([EQUITY, EQUITY + 100])
    assert (low + high) / 2 == EQUITY + 50
    assert high - low == (EQUITY + 50) * 0.01  # ±0.5 % of the level


def test_more_samples_than_columns_are_bucketed_newest_last():
    samples = [float(i) for i in range(100)]
    levels = bar_levels(samples, 10, 0.0, 99.0)
    assert len(levels) == 10 and levels[-1] == len(BARS) - 1 and levels == sorted(levels)
