# runtimes: cpython micropython
"""Tests of firmware/faults.py: each fault raises within its delay, once, and clears after its clear delay."""

from firmware.faults import NAMES, SCHEMA, FaultMonitor
from firmware.schema import Invalid
from mini import approx, raises

LAMP = {"nominal_w": 60.0, "warmup_s": 0, "min_level": 10}
DEF = SCHEMA.check({}, "faults")
V = 220.0


def healthy(level=100):
    w = 60.0 * level / 100.0
    return (V, w / (V * 0.95), w, 0.95)


DARK = (V, 0.0, 0.0, 0.0)
STANDBY = (V, 0.013, 1.0, 0.35)  # a dim-to-off driver idling behind a closed (or welded) relay: not "lit"
# A calibration table learnt from healthy(): current checks are judged only against one (see faults.py).
CAL = [[10, healthy(10)[1]], [50, healthy(50)[1]], [100, healthy(100)[1]]]


def inp(level=100, relay=None, on_s=100000, reading="healthy", lux=20000.0, sun=None):
    # sun None (no valid time) by default: the lamp burning at level > 0 is then never judged as day burning, so
    # the electrical tests see only what they are about; the day_burning tests give the sun.
    if relay is None:
        relay = level > 0
    if reading == "healthy":
        reading = healthy(level) if level > 0 and relay else DARK
    return {"level": level, "relay": relay, "on_s": on_s, "reading": reading, "lux": lux, "sun": sun}


def run(fm, t0, t1, x, step=1, log=None):
    """Feed input x (a dict, or a function t -> dict) at t0, t0+step, ... < t1; returns [(t, name, active)]."""
    out = [] if log is None else log
    t = t0
    while t < t1:
        for name, on, detail in fm.update(t, x(t) if callable(x) else x):
            assert isinstance(detail, dict)
            out.append((t, name, on))
        t += step
    return out


def only(log, name):
    return [(t, on) for t, n, on in log if n == name]


def settled(lamp=LAMP, cfg=None):
    # A monitor that has seen an hour of healthy lit lamp, so no start-up effect remains.
    fm = FaultMonitor(cfg or {}, lamp)
    assert fm.calibration() == (cfg or {}).get("nominal_a", [])
    assert run(fm, 0, 3600, inp()) == []
    return fm


def test_schema_defaults_and_cross_checks():
    assert DEF["relay_stuck"]["delay_s"] == 60 and DEF["nominal_a"] == []
    assert DEF["relay_stuck"]["enabled"] is True and DEF["relay_stuck"]["min_w"] == 0.5
    raises(Invalid, SCHEMA.check, {"relay_stuck": {"min_w": -1.0}}, "faults")
    e = raises(Invalid, SCHEMA.check, {"light_sensor": {"dark_lux": 600.0}}, "faults")
    assert "faults.light_sensor.dark_lux" in str(e)
    e = raises(Invalid, SCHEMA.check, {"nominal_a": [[50, 0.1], [20, 0.05]]}, "faults")
    assert "faults.nominal_a[1]" in str(e)
    raises(Invalid, SCHEMA.check, {"nominal_a": [[50.5, 0.1]]}, "faults")
    raises(Invalid, SCHEMA.check, {"nominal_a": [[i, 0.1] for i in range(1, 13)]}, "faults")
    raises(Invalid, SCHEMA.check, {"cycling": {"count": 1}}, "faults")
    assert set(NAMES) == {"lamp_failure", "day_burning", "over_current", "under_current", "over_power",
                          "under_power", "cycling", "relay_stuck", "light_sensor_fault", "current_sensor_fault",
                          "supply_loss"}


def test_healthy_lamp_through_a_day_raises_nothing():
    def day(t):
        h = (t // 3600) % 24
        if 6 <= h < 18:
            return inp(0, lux=30000.0 + t % 7, sun=40.0)
        return inp(100 if h < 23 and h >= 18 else 50, on_s=t % 86400, lux=0.0, sun=-40.0)

    for cfg in ({}, {"nominal_a": CAL}):  # uncalibrated (current not judged) and calibrated
        fm = FaultMonitor(cfg, LAMP)
        assert run(fm, 0, 2 * 86400, day, step=5) == []
        assert fm.active() == []


def test_lamp_failure_raised_after_delay_once_and_cleared():
    fm = settled()
    log = run(fm, 3600, 3600 + 2000, inp(reading=DARK))
    assert only(log, "lamp_failure") == [(3600 + 300, True)]  # exactly delay_s after the failure
    assert fm.active() == ["lamp_failure"]
    log = run(fm, 5600, 7000, inp())
    assert only(log, "lamp_failure") == [(5600 + 300, False)]
    assert log == [(5900, "lamp_failure", False)] and fm.active() == []


def test_lamp_failure_holds_through_the_day():
    # A failed lamp is not "repaired" by being switched off at dawn: no evidence, no clear.
    fm = settled()
    run(fm, 3600, 4000, inp(reading=DARK))
    assert fm.active() == ["lamp_failure"]
    assert run(fm, 4000, 4000 + 12 * 3600, inp(0), step=10) == []
    assert fm.active() == ["lamp_failure"]


def test_lamp_failure_respects_warmup():
    lamp = {"nominal_w": 60.0, "warmup_s": 120, "min_level": 10}
    fm = FaultMonitor({}, lamp)
    run(fm, 0, 100, inp(0))
    log = run(fm, 100, 1000, lambda t: inp(100, on_s=t - 100, reading=DARK))
    assert only(log, "lamp_failure") == [(100 + 120 + 300, True)]


def test_lamp_failure_partial_current():
    fm = settled(cfg={"nominal_a": CAL})  # calibrated, so under_current is judged (and must hold)
    r = (V, 0.05, 10.0, 0.9)  # 0.05 A < 0.3 x 0.27 A: a driver delivering a sliver
    log = run(fm, 3600, 4200, inp(reading=r))
    assert only(log, "lamp_failure") == [(3900, True)]
    assert only(log, "under_current") == [] and only(log, "under_power") == []


def test_day_burning_is_level_0_and_lamp_lit_with_the_relay_closed():
    # The driver ignores "off" (relay closed as commanded): the symptom alone, no relay fault.
    fm = FaultMonitor({}, LAMP)
    run(fm, 0, 100, inp(0))
    log = run(fm, 100, 1000, inp(0, relay=True, reading=healthy()))
    assert log == [(100 + 300, "day_burning", True)]
    log = run(fm, 1000, 2000, inp(0, relay=True, reading=DARK))
    assert log == [(1000 + 120, "day_burning", False)]


def test_day_burning_needs_the_lamp_lit():
    # Level 0, relay closed, the driver drawing its 1 W standby: not lit, so not day burning (and the relay was
    # commanded closed, so no relay fault either).
    fm = FaultMonitor({}, LAMP)
    assert run(fm, 0, 3000, inp(0, relay=True, reading=STANDBY)) == []


def test_welded_relay_by_day_raises_relay_stuck_and_day_burning_each_after_its_delay():
    # Relay commanded open, level 0, the lamp lit through welded contacts: the cause after relay_stuck.delay_s,
    # the symptom after day_burning.delay_s; each clears after its own clear_s once the lamp goes dark.
    fm = FaultMonitor({}, LAMP)
    run(fm, 0, 100, inp(0))
    log = run(fm, 100, 1000, inp(0, relay=False, reading=healthy()))
    assert log == [(100 + 60, "relay_stuck", True), (100 + 300, "day_burning", True)]
    assert fm.active() == ["day_burning", "relay_stuck"]
    log = run(fm, 1000, 2000, inp(0, relay=False, reading=DARK))
    assert log == [(1000 + 60, "relay_stuck", False), (1000 + 120, "day_burning", False)]
    assert fm.active() == []


def test_relay_stuck_is_relay_open_and_watts_at_least_min_w():
    # A welded relay behind a dim-to-off driver: only its 1 W standby flows. relay_stuck, never day_burning.
    fm = FaultMonitor({}, LAMP)
    run(fm, 0, 100, inp(0))
    log = run(fm, 100, 1000, inp(0, relay=False, reading=STANDBY))
    assert log == [(100 + 60, "relay_stuck", True)]
    log = run(fm, 1000, 2000, inp(0, relay=False, reading=DARK))
    assert log == [(1000 + 60, "relay_stuck", False)]
    # The threshold is inclusive: exactly min_w raises, just below it does not.
    fm = FaultMonitor({}, LAMP)
    assert run(fm, 0, 1000, inp(0, relay=False, reading=(V, 0.01, 0.49, 0.2))) == []
    log = run(fm, 1000, 2000, inp(0, relay=False, reading=(V, 0.01, 0.5, 0.2)))
    assert log == [(1000 + 60, "relay_stuck", True)]


def test_relay_stuck_min_w_and_enabled_are_configurable():
    # A noisy meter (min_w 5 W): the 1 W standby is not enough, a 6 W idle driver is.
    fm = FaultMonitor({"relay_stuck": {"min_w": 5.0}}, LAMP)
    assert run(fm, 0, 1000, inp(0, relay=False, reading=STANDBY)) == []
    log = run(fm, 1000, 2000, inp(0, relay=False, reading=(V, 0.078, 6.0, 0.35)))
    assert log == [(1000 + 60, "relay_stuck", True), (1000 + 300, "day_burning", True)]  # 6 W idle is lit too
    # No relay on the board: relay_stuck is off, the lit lamp at level 0 is still day burning.
    fm = FaultMonitor({"relay_stuck": {"enabled": False}}, LAMP)
    log = run(fm, 0, 1000, inp(0, relay=False, reading=healthy()))
    assert log == [(300, "day_burning", True)]


def test_relay_stuck_while_dimmed_level_with_relay_open():
    # Level > 0 but relay open (e.g. during a re-strike delay) and current flows: still the relay; and not day
    # burning, since the program wants the lamp on.
    fm = FaultMonitor({}, LAMP)
    run(fm, 0, 100, inp(0))
    log = run(fm, 100, 1000, inp(50, relay=False, reading=healthy(50)))
    assert log == [(160, "relay_stuck", True)]


def test_over_current_with_normal_power():
    fm = settled(cfg={"nominal_a": CAL})
    r = (V, 0.40, 60.0, 0.68)  # power factor collapsed: more current for the same watts
    log = run(fm, 3600, 5000, inp(reading=r))
    assert log == [(3600 + 600, "over_current", True)]
    log = run(fm, 5000, 6000, inp())
    assert log == [(5000 + 300, "over_current", False)]


def test_no_current_fault_without_a_calibration_table():
    # Uncalibrated, current cannot be predicted (a dimmed driver's power factor): 1.5x the W/V current with the
    # right power raises nothing, at full and at a dimmed level, however long it lasts.
    for level in (100, 50):
        fm = settled()
        a = 1.5 * healthy(level)[1]
        w = 60.0 * level / 100.0
        r = (V, a, w, w / (V * a))
        assert run(fm, 3600, 3600 + 3 * 3600, inp(level, reading=r), step=5) == []
        assert fm.active() == []
        # The same reading against a table is an over_current after delay_s: the check is off, not broken.
        fm = settled(cfg={"nominal_a": CAL})
        log = run(fm, 3600, 3600 + 3600, inp(level, reading=r))
        assert log == [(3600 + 600, "over_current", True)]


def test_under_current_and_under_power():
    fm = settled(cfg={"nominal_a": CAL})
    r = (V, 0.17, 36.0, 0.96)
    log = run(fm, 3600, 5000, inp(reading=r))
    assert sorted(log) == [(4200, "under_current", True), (4200, "under_power", True)]
    # Uncalibrated: power is judged without a table, current is not.
    fm = settled()
    log = run(fm, 3600, 5000, inp(reading=r))
    assert log == [(4200, "under_power", True)]


def test_over_power():
    # Calibrated 0.30 A at full output. At 240 V, 0.34 A with pf 0.98 is 80 W: current inside 0.30 A +- 20 %,
    # power outside 60 W +- 20 % (a driver regulating current, not power, on a high mains).
    fm = settled(cfg={"nominal_a": [[100, 0.30]]})
    r = (240.0, 0.34, 80.0, 0.98)
    log = run(fm, 3600, 5000, inp(reading=r))
    assert log == [(4200, "over_power", True)]


def test_dimmed_level_uses_its_own_expectation():
    fm = settled(cfg={"nominal_a": CAL})
    assert run(fm, 3600, 5000, inp(50)) == []  # 30 W at 50 %: healthy
    log = run(fm, 5000, 6000, inp(50, reading=healthy(100)))  # full power while dimmed to 50 %
    assert sorted(log) == [(5600, "over_current", True), (5600, "over_power", True)]
    fm = settled()  # uncalibrated: the power check alone sees it, with the same timing
    assert run(fm, 3600, 5000, inp(50)) == []
    log = run(fm, 5000, 6000, inp(50, reading=healthy(100)))
    assert log == [(5600, "over_power", True)]


def test_expected_current_formula_and_table():
    fm = FaultMonitor({}, LAMP)
    assert approx(fm.expected_a(100, 230.0), 60.0 / 230.0, 1e-9)
    assert approx(fm.expected_a(50, 5.0), 30.0 / 220.0, 1e-9)  # implausible volts → nominal_v
    fm = FaultMonitor({"nominal_a": [[20, 0.08], [100, 0.30]]}, LAMP)
    assert approx(fm.expected_a(60, V), 0.19, 1e-9)
    assert approx(fm.expected_a(10, V), 0.04, 1e-9)


def test_learn_and_calibration_table():
    fm = FaultMonitor({}, LAMP)
    assert fm.learn(100, [0.30, 0.32, 0.31]) == 0.31 or approx(fm.learn(100, [0.30, 0.32, 0.31]), 0.31, 1e-9)
    fm.learn(50, [0.16, float("nan"), 0.18])  # the nan is dropped
    cal = fm.calibration()
    assert [p[0] for p in cal] == [50, 100] and approx(cal[0][1], 0.17, 1e-9)
    assert SCHEMA.check({"nominal_a": cal}, "faults")["nominal_a"] == cal
    raises(Invalid, fm.learn, 0, [0.1])
    raises(Invalid, fm.learn, 30, [])
    for lv in range(1, 10):
        fm.learn(lv, [0.01 * lv])
    raises(Invalid, fm.learn, 77, [0.2])  # the table holds 11 levels
    # A learnt table changes the verdict: this lamp really draws 0.17 A at 50 %.
    fm2 = FaultMonitor({"nominal_a": cal}, LAMP)
    run(fm2, 0, 10, inp(50))
    assert run(fm2, 10, 2000, inp(50, reading=(V, 0.17, 30.0, 0.8))) == []
    # A table saying 0.136 A (= W/V) at 50 %: 0.17 A vs 0.136 +- 0.03 A → over_current.
    fm3 = FaultMonitor({"nominal_a": [[50, 30.0 / V]]}, LAMP)
    log = run(fm3, 10, 2000, inp(50, reading=(V, 0.17, 30.0, 0.8)))
    assert only(log, "over_current") == [(610, True)]
    fm4 = FaultMonitor({}, LAMP)  # no table at all: current is not judged
    assert run(fm4, 10, 2000, inp(50, reading=(V, 0.17, 30.0, 0.8))) == []


def test_calibrate_collects_means_per_level():
    lamp = {"nominal_w": 60.0, "warmup_s": 10, "min_level": 10}
    fm = FaultMonitor({}, lamp)
    fm.calibrate_start(0)
    amps = {100: 0.30, 60: 0.19, 20: 0.09}
    t = 0
    log = []
    for lv in (100, 60, 20):
        run(fm, t, t + 60, inp(lv, reading=(V, amps[lv], 0.0, 0.0)), log=log)  # bogus watts: faults are off
        t += 60
    assert log == []
    cal = fm.calibrate_stop(t)
    assert [p[0] for p in cal] == [20, 60, 100]
    for lv, a in cal:
        assert approx(a, amps[lv], 1e-9)
    assert approx(fm.expected_a(40, V), 0.14, 1e-9)


def test_cycling_raised_at_the_third_dropout_and_not_as_lamp_failure():
    fm = settled(cfg={"nominal_a": CAL})  # calibrated: the current faults must hold while cycling too

    def hps(t):  # lit 5 min, out 2 min: a sodium lamp at end of life
        return inp(reading=healthy() if (t - 3600) % 420 < 300 else DARK)

    log = run(fm, 3600, 3600 + 3 * 420, hps)
    drops = [3600 + 300 + 420 * k for k in range(3)]
    assert log == [(drops[2], "cycling", True)]
    log = run(fm, 3600 + 3 * 420, 3600 + 20 * 420, hps)
    assert log == []  # no storm: still cycling, no lamp_failure while cycling
    last_drop = 3600 + 300 + 420 * 19
    log = run(fm, 3600 + 20 * 420, last_drop + 10000, inp())
    # The window empties 3600 s after the last dropout (strictly more than window_s), then clear_s.
    assert log == [(last_drop + 3601 + 3600, "cycling", False)]


def test_light_sensor_stuck():
    fm = FaultMonitor({}, LAMP)
    log = run(fm, 0, 30 * 3600, inp(lux=123.0, sun=None), step=10)
    assert only(log, "light_sensor_fault") == [(24 * 3600, True)]
    log = run(fm, 30 * 3600, 32 * 3600, lambda t: inp(lux=float(t % 100), sun=None), step=10)
    assert only(log, "light_sensor_fault") == [(30 * 3600 + 600, False)]


def test_light_sensor_night_of_zero_lux_is_not_stuck():
    fm = FaultMonitor({}, LAMP)
    assert run(fm, 0, 14 * 3600, inp(lux=0.0, sun=-40.0), step=60) == []


def test_light_sensor_out_of_range_or_missing():
    for bad in (None, -5.0, 1e7, float("inf"), "x"):
        fm = FaultMonitor({}, LAMP)
        log = run(fm, 0, 1000, inp(lux=bad))
        assert log == [(300, "light_sensor_fault", True)], (bad, log)
        log = run(fm, 1000, 3000, lambda t: inp(lux=20000.0 + t))
        assert log == [(1600, "light_sensor_fault", False)]


def test_light_sensor_dark_with_sun_high_and_bright_at_night():
    ls = DEF["light_sensor"]
    assert (ls["dark_day_h"], ls["bright_night_h"], ls["sun_high_deg"], ls["sun_low_deg"]) == (0.5, 0.5, 15.0, -6.0)
    fm = FaultMonitor({}, LAMP)
    log = run(fm, 0, 4 * 3600, lambda t: inp(0, lux=1.0 + (t % 3) * 0.5, sun=45.0), step=10)
    assert log == [(1800, "light_sensor_fault", True)]
    # Night gives no evidence that the sensor sees daylight again: it holds.
    assert run(fm, 4 * 3600, 10 * 3600, lambda t: inp(0, lux=(t % 5) * 0.1, sun=-30.0), step=10) == []
    log = run(fm, 10 * 3600, 11 * 3600, lambda t: inp(0, lux=20000.0 + t % 7, sun=40.0), step=10)
    assert log == [(10 * 3600 + 600, "light_sensor_fault", False)]

    fm = FaultMonitor({}, LAMP)
    log = run(fm, 0, 4 * 3600, lambda t: inp(lux=2000.0 + t % 3, sun=-30.0), step=10)
    assert log == [(1800, "light_sensor_fault", True)]
    # Twilight (-6 .. 15 deg) proves nothing either way.
    assert run(fm, 4 * 3600, 5 * 3600, lambda t: inp(lux=2000.0 + t % 3, sun=0.0), step=10) == []
    assert fm.active() == ["light_sensor_fault"]


def test_light_sensor_disabled():
    fm = FaultMonitor({"light_sensor": {"enabled": False}}, LAMP)
    assert run(fm, 0, 3 * 86400, inp(lux=None), step=60) == []


def test_current_sensor_fault_on_missing_and_impossible_readings():
    for bad in (None, (V, 0.3, 500.0, 0.9), (V, -1.0, 0.0, 0.9), (V, 0.3, 60.0, 3.0), (999.0, 0.3, 60.0, 0.9),
                (V, float("nan"), 60.0, 0.9), (V, 0.3), "junk"):
        fm = settled()
        log = run(fm, 3600, 4000, inp(reading=bad))
        assert log == [(3660, "current_sensor_fault", True)], (bad, log)
        log = run(fm, 4000, 4500, inp())
        assert log == [(4060, "current_sensor_fault", False)]


def test_sporadic_meter_errors_do_not_raise():
    fm = settled()
    log = run(fm, 3600, 10000, lambda t: inp(reading=None if t % 50 == 0 else healthy()))
    assert log == []


def test_supply_loss_is_momentary():
    fm = FaultMonitor({}, LAMP)
    fm.note_reset("watchdog")
    fm.note_reset("soft")
    assert fm.update(0, inp()) == []
    fm.note_reset("brownout")
    ev = fm.update(1, inp())
    assert [(n, on) for n, on, d in ev] == [("supply_loss", True), ("supply_loss", False)]
    assert ev[0][2]["cause"] == "brownout"
    assert fm.active() == [] and fm.update(2, inp()) == []
    fm.note_reset("power_on")
    assert len(fm.update(3, inp())) == 2


def test_snapshot_keeps_active_faults_across_reboot_without_reraise():
    fm = settled()
    run(fm, 3600, 4000, inp(reading=DARK))
    run(fm, 4000, 4100, inp(0, relay=False, reading=healthy()))
    assert fm.active() == ["lamp_failure", "relay_stuck"]
    import json

    snap = json.loads(json.dumps(fm.snapshot()))
    fm2 = FaultMonitor({}, LAMP, snap)
    assert fm2.restore_error is None and fm2.active() == ["lamp_failure", "relay_stuck"]
    # Still failing after the reboot: nothing new is raised.
    assert run(fm2, 5000, 6000, inp(reading=DARK)) == []
    # Repaired: each clears once.
    log = run(fm2, 6000, 7000, inp())
    assert log == [(6300, "lamp_failure", False)]
    log = run(fm2, 7000, 7200, inp(0, relay=False, reading=DARK))
    assert log == [(7060, "relay_stuck", False)]


def test_corrupt_snapshot_is_refused():
    for bad in ("x", {}, {"v": 1, "active": {"nonsense": 5}}, {"v": 1, "active": {"supply_loss": 5}},
                {"v": 2, "active": {}}, {"v": 1, "active": {"lamp_failure": "yesterday"}}):
        fm = FaultMonitor({}, LAMP, bad)
        assert fm.restore_error and fm.active() == [], bad
    fm = FaultMonitor({}, LAMP, {"v": 1, "active": {"nonsense": 5}})
    assert "faults.saved.active" in fm.restore_error


def test_discontinuity_restarts_the_timers():
    fm = settled()
    assert run(fm, 3600, 3800, inp(reading=DARK)) == []  # 200 s of 300
    log = run(fm, 3800 + 7200, 3800 + 7200 + 400, inp(reading=DARK))  # a 2 h jump: start again
    assert log == [(3800 + 7200 + 300, "lamp_failure", True)]
    fm = settled()
    run(fm, 3600, 3800, inp(reading=DARK))
    log = run(fm, 1000, 1400, inp(reading=DARK))  # clock set back
    assert log == [(1300, "lamp_failure", True)]


def test_irregular_steps_use_real_time():
    fm = settled()
    ts = [3600, 3601, 3650, 3652, 3790, 3850, 3899, 3901, 3960]
    got = []
    for t in ts:
        for n, on, d in fm.update(t, inp(reading=DARK)):
            got.append((t, n, on))
    assert got == [(3901, "lamp_failure", True)]  # the first step at or after 3600 + 300


def test_condition_that_flickers_does_not_raise():
    fm = settled()
    # Relay open, current present 54 s out of every 55: never 60 s in a row.
    log = run(fm, 3600, 3600 + 5000, lambda t: inp(0, relay=False, reading=healthy() if t % 55 else DARK))
    assert log == []


# --- day_burning by the sun: the lamp burns in daylight with a valid clock, whatever the cause ------------------

def by_day(level=100, reading="healthy", override=False, sun=45.0, relay=None):
    x = inp(level, relay=relay, reading=reading, lux=20000.0 + 0.0, sun=sun)
    x["override"] = override
    return x


def test_day_burning_defaults():
    db = DEF["day_burning"]
    assert (db["delay_s"], db["clear_s"], db["sun_deg"], db["override_s"]) == (300, 120, 6.0, 3600)


def test_lamp_lit_as_commanded_in_daylight_is_day_burning():
    # A photocell fooled into "dark" (stuck at a night reading) lights the lamp at noon: the program is not the
    # cause, the lamp is lit as commanded, and it is still "on when it should be off".
    fm = FaultMonitor({}, LAMP)
    log = run(fm, 0, 1000, lambda t: by_day(sun=40.0 + (t % 7) * 0.01))
    assert log == [(300, "day_burning", True)]
    events = []
    fm2 = FaultMonitor({}, LAMP)
    t = 0
    while not events:
        events = fm2.update(t, by_day())
        t += 1
    name, on, detail = events[0]
    assert (name, on) == ("day_burning", True)
    assert detail["level"] == 100 and detail["sun"] == 45.0 and approx(detail["w"], 60.0, 1e-9)
    # The lamp goes off (the controller fell back to the program): cleared after clear_s.
    log = run(fm, 1000, 2000, by_day(0))
    assert log == [(1000 + 120, "day_burning", False)]
    assert fm.active() == []


def test_sun_threshold_is_inclusive_and_twilight_is_not_day():
    fm = FaultMonitor({}, LAMP)
    assert run(fm, 0, 2000, by_day(sun=5.99)) == []  # just after sunrise a lamp may still burn
    log = run(fm, 2000, 3000, by_day(sun=6.0))
    assert log == [(2300, "day_burning", True)]
    # The sun sinks below the threshold with the lamp still on (evening): that is no longer day burning.
    assert run(fm, 3000, 4000, by_day(sun=2.0)) == [(3120, "day_burning", False)]
    fm = FaultMonitor({"day_burning": {"sun_deg": 20.0}}, LAMP)
    assert run(fm, 0, 2000, by_day(sun=19.0)) == []


def test_no_clock_judges_only_the_level_0_rule():
    fm = FaultMonitor({}, LAMP)
    assert run(fm, 0, 3000, by_day(sun=None)) == []  # burning, but nobody knows it is day


def test_without_a_meter_the_command_is_the_evidence():
    # Meter dead (reading None): a lamp the node itself drives on by day is day burning; a lamp commanded off
    # cannot be judged either way (a welded relay would be invisible), so an active alarm holds.
    fm = FaultMonitor({"current_sensor": {"enabled": False}}, LAMP)
    log = run(fm, 0, 1000, by_day(reading=None))
    assert log == [(300, "day_burning", True)]
    assert run(fm, 1000, 5000, by_day(0, reading=None)) == []
    assert fm.active() == ["day_burning"]
    # At night the lamp commanded on is what should happen: healthy evidence, it clears.
    assert run(fm, 5000, 6000, by_day(reading=None, sun=-20.0)) == [(5120, "day_burning", False)]


def test_an_override_by_day_is_deliberate_for_override_s():
    # A technician's test at noon: no alarm for override_s; an override forgotten for the day: raised after
    # override_s + delay_s of burning by day.
    fm = FaultMonitor({}, LAMP)
    assert run(fm, 0, 3600, by_day(override=True), step=10) == []
    log = run(fm, 3600, 5000, by_day(override=True), step=10)
    assert log == [(3600 + 300, "day_burning", True)]
    assert run(fm, 5000, 6000, by_day(0, override=True), step=10) == [(5120, "day_burning", False)]
    # The grace restarts when the override stops burning by day (here: it ends, the lamp is off for a while).
    log = run(fm, 6000, 9000, by_day(override=True), step=10)
    assert log == []
    # An override that keeps the lamp at 0 while it is lit (a welded relay) gets no grace.
    fm = FaultMonitor({}, LAMP)
    log = run(fm, 0, 1000, by_day(0, override=True, relay=False, reading=healthy()))
    assert only(log, "day_burning") == [(300, True)]
    # override_s 0: no exemption at all.
    fm = FaultMonitor({"day_burning": {"override_s": 0}}, LAMP)
    assert run(fm, 0, 1000, by_day(override=True)) == [(300, "day_burning", True)]


def test_calibration_by_day_raises_no_day_burning():
    fm = FaultMonitor({}, LAMP)
    fm.calibrate_start(0)
    assert run(fm, 0, 2000, by_day()) == []
    fm.calibrate_stop(2000)
    assert run(fm, 2000, 3000, by_day()) == [(2300, "day_burning", True)]


def test_light_fault_flag_follows_light_sensor_fault():
    fm = FaultMonitor({}, LAMP)
    assert fm.light_fault() is False
    run(fm, 0, 1000, inp(0, lux=None))
    assert fm.light_fault() is True and "light_sensor_fault" in fm.active()
    run(fm, 1000, 3000, lambda t: inp(0, lux=100.0 + t))
    assert fm.light_fault() is False
    # Restored from a snapshot: flagged at once after a reboot, before any new evidence.
    fm = FaultMonitor({}, LAMP, {"v": 1, "active": {"light_sensor_fault": 5}, "light_reason": "bright_night"})
    assert fm.light_fault() is True
