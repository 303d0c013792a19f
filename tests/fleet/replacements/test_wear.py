"""Wear counters and forecast dates from synthetic histories, against hand-computed values."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from fleet.replacements.wear import Fit, days, from_days


def test_exact_line_gives_its_slope_and_the_day_it_reaches_a_threshold() -> None:
    # 2026-01-01 is day 20454; reads 1000, 2000, 3000 at days 0, 10, 20 after it.
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert days(start) == 20454.0
    points = [(days(start + timedelta(days=d)), 1000 + 100 * d) for d in (0, 10, 20)]
    fit = Fit.of(points)
    assert fit.n == 3
    assert fit.slope() == pytest.approx(100.0)
    # 8000 = 1000 + 100 d  ->  d = 70  ->  2026-03-12
    assert fit.reaches(8000) == date(2026, 3, 12)


def test_noisy_history_against_the_normal_equations_by_hand() -> None:
    # x = 0, 1, 2, 3 days; y = 10, 30, 40, 80.
    # n = 4, Σx = 6, Σx² = 14, Σy = 160, Σxy = 0 + 30 + 80 + 240 = 350
    # slope = (4·350 − 6·160) / (4·14 − 36) = (1400 − 960) / 20 = 22
    # intercept = (160 − 22·6) / 4 = 7
    # reaches 227 at x = (227 − 7) / 22 = 10 → 1970-01-11
    fit = Fit.of([(0, 10), (1, 30), (2, 40), (3, 80)])
    assert (fit.n, fit.sx, fit.sxx, fit.sy, fit.sxy) == (4, 6, 14, 160, 350)
    assert fit.slope() == pytest.approx(22.0)
    assert fit.intercept() == pytest.approx(7.0)
    assert fit.reaches(227) == date(1970, 1, 11)
    assert fit.reaches(226.9) == date(1970, 1, 10)


def test_no_forecast_without_growth_or_with_one_instant() -> None:
    assert Fit.of([(5, 100)]).reaches(1000) is None
    assert Fit.of([(5, 100), (5, 200)]).reaches(1000) is None  # one instant: no rate
    assert Fit.of([(0, 100), (10, 100)]).reaches(1000) is None  # flat
    assert Fit.of([(0, 100), (10, 50)]).reaches(1000) is None  # counter went back
    assert Fit.of([(0, 0), (1, 1)]).reaches(1e12) is None  # beyond year 9,900


def test_a_threshold_already_passed_is_reached_on_day_zero_at_the_latest() -> None:
    assert Fit.of([(0, 500), (1, 600)]).reaches(100) == date(1970, 1, 1)


def test_naive_instants_are_refused_and_days_round_trip() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        days(datetime(2026, 1, 1))
    assert from_days(days(datetime(2026, 7, 4, 23, 59, tzinfo=UTC))) == date(2026, 7, 4)
