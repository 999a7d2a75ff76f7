# runtimes: cpython micropython
"""Tests of firmware/clo.py: constant light output interpolation, clamping and schema."""

from firmware.clo import SCHEMA, clo_level, factor
from firmware.schema import Invalid
from mini import approx, raises

ON = SCHEMA.check({"enabled": True}, "clo")


def test_defaults():
    c = SCHEMA.check({}, "clo")
    assert c["enabled"] is False
    assert c["curve"] == [[0.0, 0.85], [50000.0, 1.0]]
    assert clo_level(80, 0, c) == 80  # disabled: unchanged


def test_new_lamp_runs_at_85_percent_and_rises_linearly():
    assert approx(clo_level(100, 0, ON), 85.0, 1e-9)
    assert approx(clo_level(100, 25000, ON), 92.5, 1e-9)
    assert approx(clo_level(100, 50000, ON), 100.0, 1e-9)
    assert approx(clo_level(50, 10000, ON), 50 * (0.85 + 0.15 * 0.2), 1e-9)


def test_flat_beyond_the_curve_ends():
    assert approx(clo_level(100, 80000, ON), 100.0, 1e-9)
    assert approx(clo_level(60, -5, ON), 51.0, 1e-9)


def test_off_stays_off_and_result_is_clamped():
    assert clo_level(0, 1000, ON) == 0
    c = SCHEMA.check({"enabled": True, "curve": [[0, 1.2], [100, 1.5]]}, "clo")
    assert clo_level(90, 0, c) == 100.0  # 108 clamped
    c = SCHEMA.check({"enabled": True, "curve": [[0, 0.0]]}, "clo")
    assert clo_level(90, 10, c) == 0.0


def test_multi_point_curve():
    curve = [[0, 0.8], [10000, 0.9], [30000, 0.9], [60000, 1.1]]
    c = SCHEMA.check({"enabled": True, "curve": curve}, "clo")
    assert approx(factor(5000, c["curve"]), 0.85, 1e-9)
    assert approx(factor(20000, c["curve"]), 0.9, 1e-9)
    assert approx(factor(45000, c["curve"]), 1.0, 1e-9)
    assert approx(factor(30000, c["curve"]), 0.9, 1e-9)


def test_schema_refuses_bad_curves():
    e = raises(Invalid, SCHEMA.check, {"curve": [[100, 0.9], [50, 1.0]]}, "clo")
    assert "clo.curve[1]" in str(e)
    raises(Invalid, SCHEMA.check, {"curve": [[0, 0.9], [0, 1.0]]}, "clo")
    raises(Invalid, SCHEMA.check, {"curve": []}, "clo")
    raises(Invalid, SCHEMA.check, {"curve": [[0, 2.0]]}, "clo")
    raises(Invalid, SCHEMA.check, {"curve": [[0, -0.1]]}, "clo")
    raises(Invalid, SCHEMA.check, {"curve": [[0, 0.9, 3]]}, "clo")
    raises(Invalid, SCHEMA.check, {"enabled": 1}, "clo")
