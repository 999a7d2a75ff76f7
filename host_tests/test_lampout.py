# runtimes: cpython micropython
"""Lamp output: schema, fade across the ticks wrap, minimum level, re-strike lockout, warm-up, curves, inversion."""

from mini import approx, raises

from firmware import lampout
from firmware.compat import ticks_add
from firmware.schema import Invalid



def _ticks_period():
    # 2^30 on the ESP32 and in firmware.compat (CPython), 2^62 on the 64-bit unix port: find the one running.
    for b in range(20, 63):
        if ticks_add((1 << b) - 1, 1) == 0:
            return 1 << b
    raise AssertionError("no ticks wrap found")


NEAR_WRAP = _ticks_period() - 700  # start just before the wrap, whichever runtime this is


def lamp(**kw):
    return lampout.LampOutput(lampout.SCHEMA.check(kw, "lamp"))


def test_schema():
    c = lampout.SCHEMA.check({}, "lamp")
    assert (c["min_level"], c["fade_ms"], c["restrike_s"], c["curve"], c["nominal_w"], c["warmup_s"],
            c["pwm_invert"]) == (10, 1500, 0, "linear", 60.0, 0, False)
    assert str(raises(Invalid, lampout.SCHEMA.check, {"curve": "cubic"}, "lamp")).startswith("lamp.curve:")
    assert str(raises(Invalid, lampout.SCHEMA.check, {"min_level": 101}, "lamp")).startswith("lamp.min_level:")
    assert str(raises(Invalid, lampout.SCHEMA.check, {"pwm_invert": 1}, "lamp")).startswith("lamp.pwm_invert:")
    assert str(raises(Invalid, lampout.SCHEMA.check, {"fade_ms": -1}, "lamp")).startswith("lamp.fade_ms:")


def test_fade_up_across_the_ticks_wrap():
    lo = lamp()
    t0 = NEAR_WRAP
    assert lo.step(t0) == (0.0, False)
    lo.set_target(100, t0)
    duty, relay = lo.step(t0)
    assert relay and approx(duty, 0.10, 1e-6)  # switching on starts at min_level
    seen = []
    for ms in range(0, 1501, 100):
        duty, relay = lo.step(ticks_add(t0, ms))
        seen.append(duty)
        assert relay
    assert ticks_add(t0, 1500) < t0  # the counter did wrap during the fade
    for a, b in zip(seen, seen[1:]):
        assert b > a  # strictly rising, no jump back at the wrap
    assert approx(seen[7], 0.10 + 0.90 * 700 / 1500, 1e-6)
    assert seen[-1] == 1.0 and lo.level == 100.0 and lo.target == 100
    assert lo.step(ticks_add(t0, 99999)) == (1.0, True)


def test_fade_down_to_off_and_retarget_mid_fade():
    lo = lamp(fade_ms=1000)
    t = 5000
    lo.set_target(100, t)
    lo.step(t + 1000)
    lo.set_target(50, t + 1000)
    assert approx(lo.step(t + 1500)[0], 0.75, 1e-6)
    lo.set_target(100, t + 1500)  # a new target mid-fade starts from the level being driven
    assert approx(lo.step(t + 2000)[0], 0.875, 1e-6)
    lo.step(t + 2500)
    assert lo.level == 100.0
    lo.set_target(0, t + 3000)
    assert approx(lo.step(t + 3500)[0], 0.55, 1e-6)  # down toward min_level ...
    duty, relay = lo.step(t + 3999)
    assert relay and duty > 0.1
    assert lo.step(t + 4000) == (0.0, False)  # ... then the relay opens
    assert lo.level == 0.0 and lo.expected_w() == 0.0


def test_min_level_means_off():
    lo = lamp(min_level=10, fade_ms=0)
    lo.set_target(5, 0)
    assert lo.target == 0 and lo.step(10) == (0.0, False)
    lo.set_target(9.9, 20)
    assert lo.step(30) == (0.0, False)
    lo.set_target(10, 40)
    assert lo.step(40) == (0.10, True)
    lo.set_target(3, 50)  # dimming below the minimum switches off, never a flickering 3 %
    assert lo.step(50) == (0.0, False)
    lo0 = lamp(min_level=0, fade_ms=0)
    lo0.set_target(3, 0)
    assert lo0.step(0) == (0.03, True)


def test_restrike_lockout_holds_the_relay_then_strikes():
    lo = lamp(restrike_s=300, fade_ms=0)
    t = NEAR_WRAP - 100000  # the lockout will end after the wrap
    lo.set_target(100, t)
    assert lo.step(t) == (1.0, True)
    assert lo.restrike_wait_ms(t) == 0  # no lockout at boot
    lo.set_target(0, t + 1000)
    assert lo.step(t + 1000) == (0.0, False)
    assert lo.restrike_wait_ms(t + 1000) == 300000
    lo.set_target(80, t + 2000)  # a dip in the supply / a command: the hot lamp may not re-strike yet
    assert lo.step(t + 2000) == (0.0, False)
    assert lo.restrike_wait_ms(t + 2000) == 299000
    t_end = ticks_add(t, 1000 + 300000)
    assert t_end < t  # across the wrap
    assert lo.step(ticks_add(t_end, -1)) == (0.0, False)
    assert lo.step(t_end) == (0.8, True)
    assert lo.restrike_wait_ms(t_end) == 0


def test_no_lockout_for_led():
    lo = lamp(fade_ms=0)
    lo.set_target(100, 0)
    lo.step(0)
    lo.set_target(0, 10)
    assert lo.step(10) == (0.0, False)
    lo.set_target(100, 11)
    assert lo.step(11) == (1.0, True)


def test_warmup_full_power_then_fade():
    lo = lamp(warmup_s=240, fade_ms=1000)
    lo.set_target(50, 0)
    assert lo.step(0) == (1.0, True) and lo.warming(0)
    assert lo.step(239999) == (1.0, True)
    assert approx(lo.step(240500)[0], 0.75, 1e-6) and not lo.warming(240500)
    assert lo.step(241000) == (0.5, True)
    assert approx(lo.expected_w(), 30.0, 1e-9)
    # A new level during warm-up waits for its end; switching off does not.
    hps = lamp(warmup_s=240, fade_ms=1000, restrike_s=300)
    hps.set_target(100, 0)
    hps.set_target(70, 100000)
    assert hps.step(200000) == (1.0, True)
    assert approx(hps.step(240500)[0], 0.85, 1e-6)
    hps2 = lamp(warmup_s=240, fade_ms=1000)
    hps2.set_target(100, 0)
    hps2.set_target(0, 100000)
    assert approx(hps2.step(100500)[0], 0.55, 1e-6)
    assert hps2.step(101000) == (0.0, False)


def test_log_curve_monotonic_and_bounded():
    prev = 0.0
    for level in range(1, 101):
        d = lampout.log_duty(level)
        assert d > prev, level
        prev = d
    assert lampout.log_duty(100) == 1.0 and lampout.log_duty(0) == 0.0
    assert 0.0 < lampout.log_duty(10) < 0.01
    lo = lamp(curve="log", fade_ms=0)
    lo.set_target(10, 0)
    assert approx(lo.step(0)[0], lampout.log_duty(10), 1e-9)
    lo.set_target(100, 1)
    assert lo.step(1) == (1.0, True)
    lo.set_target(50, 2)
    assert lo.step(2)[0] < 0.5  # perceptual: half the level is much less than half the duty


def test_pwm_invert():
    lo = lamp(pwm_invert=True, fade_ms=0)
    assert lo.step(0) == (1.0, False)  # off: the active-low input is held high
    lo.set_target(70, 1)
    duty, relay = lo.step(1)
    assert relay and approx(duty, 0.3, 1e-9)


def test_a_live_config_change_keeps_the_lamp_lit():
    # A lamp at 80 %, then the engineer pushes a slower fade and a log curve: the new output carries on from what
    # is driven, with no dip to off and no fade back in; the next level change uses the new settings.
    old = lamp(fade_ms=1000)
    old.set_target(80, 0)
    old.step(5000)
    assert old.level == 80.0 and old.relay
    new = lampout.LampOutput(lampout.SCHEMA.check({"fade_ms": 4000, "curve": "log"}, "lamp"), old)
    assert new.step(5000) == (lampout.log_duty(80.0), True)
    new.set_target(80, 6000)  # the program asks for the same level: nothing moves
    assert new.level == 80.0 and not new.fading()
    new.set_target(40, 7000)
    new.step(9000)  # half-way through the new 4 s fade
    assert approx(new.level, 60.0, 1e-6)
    # Without the previous output it would start dark (the power-up behaviour).
    assert lamp(fade_ms=4000).step(5000) == (0.0, False)


def test_a_live_config_change_keeps_the_restrike_lockout():
    old = lamp(restrike_s=300, fade_ms=0)
    old.set_target(100, 0)
    old.step(0)
    old.set_target(0, 1000)
    old.step(1000)
    new = lampout.LampOutput(lampout.SCHEMA.check({"restrike_s": 300, "fade_ms": 0, "nominal_w": 150.0}, "lamp"), old)
    new.set_target(100, 2000)
    assert new.step(2000) == (0.0, False) and new.restrike_wait_ms(2000) == 299000  # the hot lamp still waits
