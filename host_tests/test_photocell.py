# runtimes: cpython micropython
"""Photocell: schema, first reading decides at once, headlights and clouds never toggle, real dusk does, health,
time jumps."""

from mini import raises

from firmware import photocell
from firmware.schema import Invalid

T0 = 836000000  # some t2k in 2026


def cfg(**kw):
    return photocell.SCHEMA.check(kw, "photocell")


def err(**kw):
    return str(raises(Invalid, photocell.SCHEMA.check, kw, "photocell"))


def feed(pc, samples, t, dt):
    """Feed samples dt seconds apart from t; return (next t, list of times at which `dark` changed)."""
    flips = []
    for lux in samples:
        before = pc.dark
        pc.update(lux, t)
        if pc.dark != before:
            flips.append(t)
        t += dt
    return t, flips


def test_schema_defaults_and_errors():
    c = cfg()
    assert (c["on_lux"], c["off_lux"], c["debounce_s"], c["window"], c["alpha"]) == (20.0, 50.0, 120, 5, 0.3)
    assert err(on_lux=50, off_lux=50) == "photocell.on_lux: must be < off_lux"
    assert err(on_lux=60) == "photocell.on_lux: must be < off_lux"
    assert err(window=0).startswith("photocell.window:")
    assert err(window=10).startswith("photocell.window:")
    assert err(alpha=0).startswith("photocell.alpha:")
    assert err(alpha=1.5).startswith("photocell.alpha:")
    assert err(debounce_s=-1).startswith("photocell.debounce_s:")
    assert err(min_lux=10, max_lux=5).startswith("photocell.min_lux:")
    assert err(lux=3).startswith("photocell.lux:")
    assert cfg(alpha=1)["alpha"] == 1.0


def test_unknown_until_first_reading_which_decides_at_once():
    pc = photocell.Photocell(cfg())
    assert pc.dark is None and pc.lux is None
    pc.update(None, T0)
    assert pc.dark is None
    pc.update(3.0, T0 + 1)  # a reboot at night: on at once
    assert pc.dark is True
    pc = photocell.Photocell(cfg())
    pc.update(4000.0, T0)
    assert pc.dark is False
    pc = photocell.Photocell(cfg())
    pc.update(35.0, T0)  # inside the hysteresis band at boot: counts as dark (fail toward light)
    assert pc.dark is True


def test_headlights_at_night_never_toggle():
    pc = photocell.Photocell(cfg())
    t, _ = feed(pc, [2.0] * 30, T0, 1)
    assert pc.dark is True
    # One hour, one sample a second; every 3 minutes a car: 5 s of 10 000 lux on the sensor.
    flips = []
    for car in range(20):
        t, f = feed(pc, [10000.0] * 5 + [2.0] * 175, t, 1)
        flips += f
    assert flips == [] and pc.dark is True
    # Sampled once a minute a car is one sample in the median window: rejected outright.
    pc2 = photocell.Photocell(cfg())
    t, f = feed(pc2, [1.5, 1.5, 10000.0, 1.5, 1.5, 10000.0, 1.5, 1.5], T0, 60)
    assert f == [T0] and pc2.dark is True and pc2.lux < 20


def test_clouds_by_day_never_toggle():
    pc = photocell.Photocell(cfg())
    t, _ = feed(pc, [20000.0] * 10, T0, 10)
    assert pc.dark is False
    # A storm front: 20 minutes at 300 lux (dim, still above off_lux), then a 90 s black squall at 8 lux.
    t, f1 = feed(pc, [300.0] * 120, t, 10)
    t, f2 = feed(pc, [8.0] * 9, t, 10)
    t, f3 = feed(pc, [900.0] * 60, t, 10)
    assert f1 == f2 == f3 == [] and pc.dark is False


def test_real_dusk_switches_within_debounce():
    c = cfg()
    pc = photocell.Photocell(c)
    t, _ = feed(pc, [800.0] * 5, T0, 10)
    # Dusk: lux falls 8 % per 10 s sample, from 800 down to ~0.1.
    lux = 800.0
    cross = None
    flips = []
    while lux > 0.1:
        before = pc.dark
        pc.update(lux, t)
        if cross is None and lux < c["on_lux"]:
            cross = t
        if pc.dark != before:
            flips.append(t)
        lux *= 0.92
        t += 10
    assert len(flips) == 1 and pc.dark is True
    delay = flips[0] - cross
    # The filter lags a few samples, then the condition must hold for debounce_s.
    assert c["debounce_s"] <= delay <= c["debounce_s"] + 60, delay
    # And dawn switches back, once.
    t, f = feed(pc, [0.5 * 1.1 ** k for k in range(120)], t, 10)
    assert len(f) == 1 and pc.dark is False


def test_a_long_break_restarts_the_debounce():
    pc = photocell.Photocell(cfg(window=1, alpha=1.0, debounce_s=120, break_s=20))
    t, _ = feed(pc, [500.0], T0, 10)
    t, f = feed(pc, [5.0] * 11, t, 10)  # 100 s dark
    t, f2 = feed(pc, [30.0] * 4, t, 10)  # 30 s back in the band: longer than break_s, the pending change is off
    t, f3 = feed(pc, [5.0] * 12, t, 10)  # 110 s: not yet
    assert f == f2 == f3 == [] and pc.dark is False
    t, f4 = feed(pc, [5.0], t, 10)  # 120 s held since the break
    assert len(f4) == 1 and pc.dark is True


def test_a_short_break_does_not_restart_the_debounce():
    # Dusk on a busy road: a car's lights interrupt the darkness for 10 s; the lamp still comes on 120 s after the
    # darkness began, not 120 s after the last car.
    pc = photocell.Photocell(cfg(window=1, alpha=1.0, debounce_s=120, break_s=20))
    t, _ = feed(pc, [500.0], T0, 10)
    start = t
    t, f = feed(pc, [5.0] * 6, t, 10)
    t, f2 = feed(pc, [3000.0], t, 10)  # one sample of headlights: a 10 s break
    t, f3 = feed(pc, [5.0] * 6, t, 10)
    assert f == f2 == [] and pc.dark is True and len(f3) == 1
    assert f3[0] - start == 120


def test_health_from_missing_and_implausible_readings():
    pc = photocell.Photocell(cfg(fail_count=3))
    assert pc.healthy  # no evidence yet
    pc.update(2.0, T0)
    assert pc.dark is True
    pc.update(None, T0 + 1)
    pc.update(-5.0, T0 + 2)
    assert pc.healthy
    pc.update(float("nan"), T0 + 3)
    assert not pc.healthy and pc.lux is None
    pc.update(1e9, T0 + 4)
    pc.update(float("inf"), T0 + 5)
    pc.update("12", T0 + 6)
    assert not pc.healthy
    assert pc.dark is True  # the last opinion is kept; callers must look at healthy
    pc.update(3.0, T0 + 7)
    assert pc.healthy and pc.dark is True
    # A bright reading after the outage must still be debounced (a flaky sensor cannot bypass it).
    pc.update(5000.0, T0 + 8)
    assert pc.dark is True


def test_time_jumps_restart_the_debounce():
    pc = photocell.Photocell(cfg(window=1, alpha=1.0, debounce_s=120))
    t, _ = feed(pc, [2.0], T0, 10)
    t, f = feed(pc, [500.0] * 10, t, 10)  # 90 s of light held
    assert f == []
    # The clock is set back a day (NTP): the pending change restarts from the new now, not from the old one.
    t -= 86400
    t, f = feed(pc, [500.0] * 12, t, 10)  # 110 s after the jump: not yet
    assert f == [] and pc.dark is True
    t, f = feed(pc, [500.0], t, 10)
    assert len(f) == 1 and pc.dark is False
    # Forward jump of 2 h while a change is pending: must not count as held for 2 h.
    t, f = feed(pc, [2.0] * 3, t, 10)
    assert f == []
    t += 7200
    t, f = feed(pc, [2.0] * 5, t, 10)
    assert f == [] and pc.dark is False
    t, f = feed(pc, [2.0] * 8, t, 10)
    assert len(f) == 1 and pc.dark is True


def test_decisions_do_not_depend_on_how_often_the_photocell_is_fed():
    # The same dusk (lux falling 3 % a second, a car's 3000 lux for 4 s every 40 s) fed once a second and ten times
    # a second (system.control_ms 100: ten readings share each second of t2k). Only a second's first reading enters
    # the filter, so the median window, the EMA and the fail count span the same seconds, and the lamp switches at
    # the same moment.
    def street(k):
        return 3000.0 if k % 40 < 4 else 400.0 * 0.97 ** k

    slow = photocell.Photocell(cfg())
    fast = photocell.Photocell(cfg())
    slow_flips, fast_flips = [], []
    for k in range(400):
        t = T0 + k
        before = slow.dark
        slow.update(street(k), t)
        if slow.dark != before:
            slow_flips.append(t)
        before = fast.dark
        for _ in range(10):
            fast.update(street(k), t)
        if fast.dark != before:
            fast_flips.append(t)
    assert len(slow_flips) == 2 and slow_flips[0] == T0  # the first reading decides (light), then dusk (dark)
    assert fast_flips == slow_flips and fast.lux == slow.lux


def test_bad_readings_count_once_a_second():
    pc = photocell.Photocell(cfg(fail_count=3))
    pc.update(2.0, T0)
    for t in (T0 + 1, T0 + 2):
        for _ in range(10):
            pc.update(None, t)
    assert pc.healthy  # two bad seconds, not twenty bad readings
    pc.update(None, T0 + 3)
    assert not pc.healthy
