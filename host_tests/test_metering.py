# runtimes: cpython micropython
"""Tests of firmware/metering.py: energy integration, counters, persistence, save pacing."""

import sys

from firmware.metering import SCHEMA, Meter
from firmware.schema import Invalid
from mini import approx, raises

CPYTHON = sys.implementation.name == "cpython"


class Lcg:
    """Deterministic noise, identical on both runtimes (no `random` module differences)."""

    def __init__(self, seed):
        self.s = seed

    def uniform(self):  # -1..1
        self.s = (self.s * 1103515245 + 12345) & 0x7FFFFFFF
        return self.s / 1073741823.5 - 1.0


def r60(w=60.0):
    return (220.0, w / 209.0, w, 0.95)


def test_schema_defaults_and_ranges():
    c = SCHEMA.check({}, "metering")
    assert c["save_interval_s"] == 900 and 86400 // c["save_interval_s"] <= 100
    assert c["nominal_voltage"] == 220.0
    e = raises(Invalid, SCHEMA.check, {"save_interval_s": 299}, "metering")
    assert "metering.save_interval_s" in str(e)
    raises(Invalid, SCHEMA.check, {"save_interval_s": 86401}, "metering")
    raises(Invalid, SCHEMA.check, {"typo": 1}, "metering")


def test_year_of_one_second_updates_at_60w():
    # A full year on CPython (31.5 M steps, ~15 s). The unix port is ~8x slower per step, so there it runs 2 days;
    # totals are ints, so the result scales exactly. Float32 behaviour: test_faults_year.py (CPython-only).
    days = 365 if CPYTHON else 2
    m = Meter()
    r = r60()
    up = m.update
    for t in range(days * 86400 + 1):
        up(t, r, True)
    c = m.counters()
    want = 60.0 * 24 * days
    assert abs(c["energy_wh"] - want) <= want * 0.001, c
    assert approx(c["energy_wh"], want, 0.05)  # in fact far better than 0.1 %
    assert c["burn_h"] == 24 * days
    assert isinstance(m._energy[0], int) and isinstance(m._energy[1], int) and 0 <= m._energy[1] < 1000000000


def test_night_with_dimming_and_noise_within_1_percent():
    # True power: piecewise linear (fades) 60 W → 30 W at 23:00 → 60 W at 05:00 → off at 06:00; the meter sees
    # it with +-3 % noise, at irregular steps of 1 s (sometimes 2 s).
    pts = [(0, 0.0), (2, 60.0), (18000, 60.0), (18030, 30.0), (39600, 30.0), (39630, 60.0), (43200, 60.0),
           (43202, 0.0), (43300, 0.0)]

    def p(t):
        for i in range(1, len(pts)):
            t1, p1 = pts[i]
            if t <= t1:
                t0, p0 = pts[i - 1]
                return p0 + (p1 - p0) * (t - t0) / (t1 - t0)
        return 0.0

    exact = 0.0
    for i in range(1, len(pts)):
        exact += (pts[i][0] - pts[i - 1][0]) * (pts[i][1] + pts[i - 1][1]) / 2.0 / 3600.0
    m = Meter()
    n = Lcg(7)
    t = 0
    while t <= 43300:
        w = p(t) * (1.0 + 0.03 * n.uniform())
        m.update(t, (220.0, w / 209.0, w, 0.95), w > 1.0)
        t += 2 if n.uniform() > 0.9 else 1
    got = m.counters()["energy_wh"]
    assert abs(got - exact) <= 0.01 * exact, (got, exact)
    assert m.counters()["switch_ons"] == 1  # on at t=1 (0 W at t=0 meant off)


def test_sensor_error_is_counted_and_not_integrated():
    m = Meter()
    for t in range(0, 101):
        m.update(t, r60(), True)
    for t in range(101, 201):
        m.update(t, None, True)
    e1 = m.counters()["energy_wh"]
    for t in range(201, 302):
        m.update(t, r60(), True)
    assert m.errors == 100
    # 100 s before and 100 s after the gap; the gap itself (and the step into the first good sample) count nothing.
    assert approx(e1, 100 * 60 / 3600.0, 0.051)
    assert approx(m.counters()["energy_wh"], 200 * 60 / 3600.0, 0.051)
    # Impossible values are errors too, and never subtract energy.
    before = m.energy_wh()
    for bad in ((220.0, 1.0, float("nan"), 1.0), (220.0, 1.0, 1e9, 1.0), (220.0, 1.0, -50.0, 1.0), "junk", (1, 2)):
        m.update(302, bad, True)
    assert m.errors == 105 and m.energy_wh() == before


def test_a_dead_meter_is_stood_in_for_by_the_lamp_model_and_counted_apart():
    # An hour at 60 W measured; then the meter dies for an hour of the lamp dimmed to 50 % (the model says 30 W),
    # then comes back. The gap is counted at the model's power and reported as the estimated part.
    m = Meter()
    for t in range(0, 3601):
        m.update(t, r60(), True, 60.0)
    measured = m.energy_wh()
    for t in range(3601, 7201):
        m.update(t, None, True, 30.0)
    for t in range(7201, 10801):
        m.update(t, r60(), True, 60.0)
    c = m.counters()
    assert approx(measured, 60.0, 1e-5)  # each step rounds to the nWh: at most 0.5 nWh x 3600 steps
    # Every second of the gap counts once, at the power the model gave for it (the step into the gap at 60 W, the
    # rest at 30 W, the step back to a measured reading at 30 W); counters are rounded to 0.1 Wh.
    est_exact = (60.0 + 30.0 * 3600) / 3600.0
    assert approx(m._estimated[0] + m._estimated[1] / 1e9, est_exact, 1e-5)
    assert approx(m.energy_wh(), 60.0 + est_exact + 60.0 * 3599 / 3600.0, 2e-5)
    assert c["energy_estimated_wh"] == 30.0 and c["energy_wh"] == 150.0
    assert m.errors == 3600
    # Without a model (the caller gives none) the gap counts nothing, as before; the lamp off is 0 W, not unknown.
    m2 = Meter()
    for t in range(0, 100):
        m2.update(t, None, True)
    m3 = Meter()
    for t in range(0, 100):
        m3.update(t, None, False, 0.0)
    assert m2.energy_wh() == 0.0 and m3.energy_wh() == 0.0 and m3.errors == 100


def test_a_version_1_snapshot_is_still_read():
    old = {"v": 1, "wh": 12, "nwh": 5, "burn_s": 7, "switch_ons": 2, "supply_losses": 1}
    m = Meter(None, old)
    assert m.restore_error is None
    assert m.counters()["energy_wh"] == 12.0 and m.counters()["energy_estimated_wh"] == 0.0
    assert m.snapshot()["v"] == 2 and m.snapshot()["est_wh"] == 0


def test_small_negative_watts_count_as_zero():
    m = Meter()
    for t in range(0, 3601):
        m.update(t, (220.0, 0.001, -0.4, 0.1), False)
    assert m.counters()["energy_wh"] == 0.0 and m.errors == 0


def test_discontinuities_integrate_nothing():
    m = Meter()
    m.update(1000, r60(), True)
    m.update(1001, r60(), True)
    e = m.energy_wh()
    m.update(500, r60(), True)  # clock stepped back
    assert m.energy_wh() == e and m.counters()["burn_h"] == round(1 / 3600.0, 2)
    m.update(500 + 3601, r60(), True)  # gap over an hour
    assert m.energy_wh() == e
    m.update(500 + 3601 + 3600, r60(), True)  # exactly an hour is still integrated
    assert approx(m.energy_wh() - e, 60.0, 1e-6)
    assert m._burn_s == 1 + 3600


def test_burn_time_and_switch_on_edges():
    m = Meter()
    m.update(0, r60(), True)  # first sample: state unknown before, not an edge
    assert m.counters()["switch_ons"] == 0
    seq = [False, False, True, True, False, True, False, False, True]
    for i, on in enumerate(seq):
        m.update(60 * (i + 1), r60() if on else (220.0, 0.0, 0.0, 0.0), on)
    c = m.counters()
    assert c["switch_ons"] == 3
    # Burn counts each interval with the state of its start: t0 on, then on at steps 3, 4, 6 → 4 minutes.
    assert m._burn_s == 4 * 60 and c["burn_h"] == round(240 / 3600.0, 2)


def test_supply_loss_counter():
    m = Meter()
    m.note_supply_loss()
    m.note_supply_loss()
    assert m.counters()["supply_losses"] == 2


def test_snapshot_round_trip():
    m = Meter()
    m.note_supply_loss()
    for t in range(0, 7201):
        m.update(t, r60(), t < 3600 or t > 3700)
    snap = m.snapshot()
    import json

    m2 = Meter(None, json.loads(json.dumps(snap)))
    assert m2.restore_error is None
    assert m2.counters() == m.counters() and m2.snapshot() == snap
    # Counters carry on from the restored values.
    m2.update(10000, r60(), True)
    m2.update(10001, r60(), True)
    assert m2.energy_wh() > m.energy_wh() and m2._burn_s == m._burn_s + 1


def test_corrupt_snapshot_is_refused_and_counters_start_at_zero():
    good = Meter().snapshot()
    good["wh"] = 5
    cases = [
        "not a dict",
        {},
        dict(good, wh=-1),
        dict(good, nwh=1000000000),
        dict(good, switch_ons="3"),
        dict(good, v=99),
        dict(good, burn_s=1.5),
        dict(good, extra=1),
    ]
    for bad in cases:
        m = Meter(None, bad)
        assert m.restore_error, bad
        assert m.counters() == {"energy_wh": 0.0, "energy_estimated_wh": 0.0, "burn_h": 0.0, "switch_ons": 0,
                                "supply_losses": 0}
    m = Meter(None, dict(good, wh=-1))
    assert "metering.saved.wh" in m.restore_error
    assert Meter(None, good).counters()["energy_wh"] == 5.0


def test_due_save_paces_flash_writes():
    m = Meter({"save_interval_s": 900})
    assert not m.due_save(0)  # first call starts the interval: a boot loop writes nothing
    m.update(0, r60(), True)
    m.update(1, r60(), True)
    assert not m.due_save(899)
    assert m.due_save(900)
    m.saved(900)
    assert not m.due_save(1800)  # the interval passed but nothing changed since the save: no write
    m.update(1801, r60(), True)
    assert m.due_save(1801)
    m.saved(1801)
    assert not m.due_save(100)  # clock set back: the interval restarts from here
    m.note_supply_loss()
    assert not m.due_save(999)
    assert m.due_save(1000)


def test_writes_per_day_within_budget():
    m = Meter()
    writes = 0
    for t in range(0, 86400):
        m.update(t, r60(), True)
        if m.due_save(t):
            m.saved(t)
            writes += 1
    assert 90 <= writes <= 96, writes


def test_counters_never_go_backwards():
    m = Meter()
    n = Lcg(3)
    t = 0
    prev = m.counters()
    for _ in range(5000):
        t += int(3 * n.uniform()) + (7200 if n.uniform() > 0.995 else 1)  # includes negative and huge steps
        x = n.uniform()
        reading = None if x > 0.9 else (220.0, 0.3, 100.0 * n.uniform(), 0.9)
        m.update(t, reading, n.uniform() > 0)
        c = m.counters()
        for k in c:
            assert c[k] >= prev[k], (k, c, prev)
        prev = c
