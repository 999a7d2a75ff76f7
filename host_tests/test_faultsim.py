"""Fault detection of a whole simulated lamp post (tools/faultsim.py): the sim injects each fault it knows, the
node's real control chain consumes the sim's readings, and each fault must be raised within its stated delay of
becoming observable, once, and cleared within its clear delay of going away, with no other alarm; a noisy healthy
lamp for a simulated year raises nothing; the meter's energy over a night matches the sim's exact power integral.
CPython only (pytest fixtures, tmp dirs, the printed table). `pytest -s` prints the table of detection delays.

Node config used by the runs: the defaults (Padang, astro mode, the default program) plus a faults.nominal_a
table learnt from the sim's lamp through FaultMonitor's own calibration (FaultSim.calibrate). Without a table
faults.py judges no current (only power): test_uncalibrated_defaults_raise_no_alarm_in_a_night checks that such a
node raises nothing through a night whose dimmed current is far from W / V.
"""

import os
import subprocess
import sys

import pytest
from conftest import ROOT  # (importing conftest puts the repo and tools/ on sys.path)

import faultsim  # noqa: E402
from drivers import sim as simmod  # noqa: E402
from firmware import astro, timebase  # noqa: E402
from firmware import config as configmod  # noqa: E402
from firmware.faults import SCHEMA as FAULTS_SCHEMA  # noqa: E402
from firmware.faults import FaultMonitor  # noqa: E402
from firmware.node import Node  # noqa: E402

DAY = timebase.days_from_civil(2026, 3, 20)  # the sim's default start date: sunset 18:29, sunrise 06:22 local
DEF = FAULTS_SCHEMA.check({}, "faults")
CAL_LEVELS = faultsim.CAL_LEVELS
SITE = configmod.defaults()["site"]
# A noisier street than sim.json's defaults, for the healthy year.
NOISY = {"seed": 11, "cloudiness": 0.8, "headlights_per_hour": 30.0, "lux_noise": 0.1, "mains_noise_v": 10.0}

ROWS = []  # the detection-delay table, printed at the end of the module


def at(hh, mm=0, day=0):
    """World t2k of local hh:mm on DAY + day."""
    return faultsim.local_t2k(DAY + day, hh, mm, SITE)


def hm(t):
    lt = t - at(0)
    return "%+d %02d:%02d:%02d" % (lt // 86400, lt % 86400 // 3600, lt % 3600 // 60, lt % 60)


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    fs = faultsim.FaultSim({"start_t2k": at(12)}, None, "soft", str(tmp_path_factory.mktemp("cal")))
    table = fs.calibrate(CAL_LEVELS, hold_s=60)
    assert [p[0] for p in table] == list(CAL_LEVELS)
    assert fs.events == []  # electrical faults hold while calibrating, even with odd levels by day
    # The sim's driver: constant power plus a 1 W floor, power factor 0.35..0.96 → current per level.
    assert 0.27 < table[-1][1] < 0.30 and table[0][1] > 2.0 * 6.0 / 220.0
    return table


def node_cfg(table, **faults):
    f = {"nominal_a": table}
    f.update(faults)
    return {"faults": f}


@pytest.fixture(scope="module", autouse=True)
def table_printer():
    yield
    if ROWS:
        print("\n\nDetection delays (s) measured on the simulated post; bound = configured delay (+ one step)")
        print("%-24s %-31s %-12s %-12s %6s %6s %6s %6s %4s" % (
            "sim fault", "raised", "observable", "raised at", "delay", "bound", "clear", "bound", "step"))
        for r in ROWS:
            print("%-24s %-31s %-12s %-12s %6s %6s %6s %6s %4d" % r)


class Watch:
    """on_step hook: for each of `observables`, the first world time >= t1 (and < t2) at which it held."""

    def __init__(self, t1, t2, observables):
        self.t1 = t1
        self.t2 = t2
        self.observables = observables
        self.t_obs = [None] * len(observables)

    def __call__(self, fs, events):
        t = fs.world_now()
        if not self.t1 <= t < self.t2:
            return
        for i, observable in enumerate(self.observables):
            if self.t_obs[i] is None and observable(fs.inputs):
                self.t_obs[i] = t


def expect(fault, observable, delay, clear_bound, reason=None):
    """One fault a scenario must raise: `delay` after `observable` first holds, cleared within `clear_bound` of
    the sim fault's end."""
    return (fault, reason, observable, delay, clear_bound)


def lamp_on(inp):
    return inp["relay"] and inp["level"] > 0


def relay_open(inp):
    return not inp["relay"]


def day_lit(inp):
    """The program says off (level 0) and the meter sees the lamp lit: the day_burning symptom."""
    r = inp["reading"]
    return inp["level"] <= 0 and r is not None and r[1] >= DEF["lit_a"] and r[2] >= DEF["lit_w"]


def always(inp):
    return True


def sun_below(deg):
    return lambda inp: inp["sun"] is not None and inp["sun"] < deg


C = DEF
CYC_PERIOD = simmod.CYCLING_ON_S + simmod.CYCLING_OFF_S
RELAY_STUCK = expect("relay_stuck", relay_open, C["relay_stuck"]["delay_s"], C["relay_stuck"]["clear_s"])
DAY_BURNING = expect("day_burning", day_lit, C["day_burning"]["delay_s"], C["day_burning"]["clear_s"])
# (id, sim fault, window (t1, t2), run (start, end), fine step, coarse step, expected faults (each raised once
#  within its delay of becoming observable and cleared within its bound after t2; no other fault), sim lamp/extra,
#  faults cfg extra)
SCENARIOS = [
    ("lamp_dead", "lamp_dead", (at(19), at(21)), (at(12), at(22)), 1, 10,
     [expect("lamp_failure", lamp_on, C["lamp_failure"]["delay_s"], C["lamp_failure"]["clear_s"])], {}, {}),
    # Dead from the afternoon: nothing to see until the program switches the lamp on at sunset.
    ("lamp_dead from day", "lamp_dead", (at(15), at(20)), (at(12), at(21)), 1, 10,
     [expect("lamp_failure", lamp_on, C["lamp_failure"]["delay_s"], C["lamp_failure"]["clear_s"])], {}, {}),
    # A welded relay behind a 1-10 V driver that cannot dim to off (it idles at ~its 10 % floor, 6 W, lit): the
    # cause (relay_stuck) and the symptom (day_burning), each after its own delay.
    ("relay_stuck_on day 6W", "relay_stuck_on", (at(8), at(10)), (at(7), at(11)), 1, 10,
     [RELAY_STUCK, DAY_BURNING], {"lamp": {"standby_w": 6.0}}, {}),
    # Welded during the night: seen when the program opens the relay at sunrise.
    ("relay_stuck_on dawn 6W", "relay_stuck_on", (at(3, 0, 1), at(9, 0, 1)), (at(12), at(10, 0, 1)), 1, 60,
     [RELAY_STUCK, DAY_BURNING], {"lamp": {"standby_w": 6.0}}, {}),
    # The sim's default driver dims to off: 1 W standby through the welded relay, >= relay_stuck.min_w but not
    # lit, so relay_stuck alone, with the default thresholds.
    ("relay_stuck_on day 1W", "relay_stuck_on", (at(8), at(10)), (at(7), at(11)), 1, 10, [RELAY_STUCK], {}, {}),
    ("meter_dead", "meter_dead", (at(20), at(20, 30)), (at(19), at(21)), 1, 10,
     [expect("current_sensor_fault", always, C["current_sensor"]["delay_s"], C["current_sensor"]["clear_s"])],
     {}, {}),
    ("meter_dead day", "meter_dead", (at(13), at(13, 30)), (at(12), at(14)), 1, 10,
     [expect("current_sensor_fault", always, C["current_sensor"]["delay_s"], C["current_sensor"]["clear_s"])],
     {}, {}),
    ("light_dead", "light_dead", (at(13), at(14)), (at(12), at(15)), 1, 10,
     [expect("light_sensor_fault", always, C["light_sensor"]["delay_s"], C["light_sensor"]["clear_s"], "range")],
     {}, {}),
    # Stuck at a twilight reading (between dark_lux and bright_lux): only the "identical for stuck_h" rule sees it.
    ("light_stuck twilight", "light_stuck", (at(18, 35), at(19, 35, 1)), (at(12), at(20, 30, 1)), 10, 10,
     [expect("light_sensor_fault", always, int(C["light_sensor"]["stuck_h"] * 3600), C["light_sensor"]["clear_s"],
             "stuck")], {}, {}),
    # Stuck at a daylight reading: "bright_night" once the sun is below sun_low_deg for bright_night_h.
    ("light_stuck daylight", "light_stuck", (at(12, 30), at(2, 0, 1)), (at(12), at(3, 0, 1)), 10, 10,
     [expect("light_sensor_fault", sun_below(C["light_sensor"]["sun_low_deg"]),
             int(C["light_sensor"]["bright_night_h"] * 3600), C["light_sensor"]["clear_s"], "bright_night")],
     {}, {}),
    # count dropouts (the sim: 240 s lit, 60 s out) make cycling; it clears a window without dropout + clear_s later.
    ("cycling", "cycling", (at(19, 30), at(21)), (at(18), at(23, 30)), 1, 10,
     [expect("cycling", lamp_on, (C["cycling"]["count"] - 1) * CYC_PERIOD + simmod.CYCLING_ON_S,
             C["cycling"]["window_s"] + C["cycling"]["clear_s"])], {}, {}),
    # Current is judged against the calibrated table (node_cfg installs it): same power, 1.x the current.
    ("over_current", "over_current", (at(20), at(21)), (at(19), at(22)), 1, 10,
     [expect("over_current", lamp_on, C["current"]["delay_s"], C["current"]["clear_s"])], {}, {}),
    ("over_current dimmed 60%", "over_current", (at(23, 30), at(1, 0, 1)), (at(22, 30), at(2, 0, 1)), 1, 10,
     [expect("over_current", lamp_on, C["current"]["delay_s"], C["current"]["clear_s"])], {}, {}),
    # Part of the LED strings open: power and current both low (the current judged against the table).
    ("under_power", "under_power", (at(20), at(21)), (at(19), at(22)), 1, 10,
     [expect("under_power", lamp_on, C["power"]["delay_s"], C["power"]["clear_s"]),
      expect("under_current", lamp_on, C["current"]["delay_s"], C["current"]["clear_s"])], {}, {}),
    ("under_power dimmed 60%", "under_power", (at(23, 30), at(1, 0, 1)), (at(22, 30), at(2, 0, 1)), 1, 10,
     [expect("under_power", lamp_on, C["power"]["delay_s"], C["power"]["clear_s"]),
      expect("under_current", lamp_on, C["current"]["delay_s"], C["current"]["clear_s"])], {}, {}),
    # An overdriving driver: power and current both high.
    ("over_power", "over_power", (at(20), at(21)), (at(19), at(22)), 1, 10,
     [expect("over_power", lamp_on, C["power"]["delay_s"], C["power"]["clear_s"]),
      expect("over_current", lamp_on, C["current"]["delay_s"], C["current"]["clear_s"])], {}, {}),
]


def real_node(path, sim, cfg):
    """The firmware's own Node on a SimBoard driven by a ManualClock (no link: only control steps are run)."""
    path.mkdir()
    clk = faultsim.ManualClock(0)
    board = simmod.make_board(None, str(path), sim, "soft", clk, clk)
    return Node(board, cfg, board.store, lambda: 0.5), board, clk


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_injected_fault_raised_in_time_once_and_cleared(sc, calibration, tmp_path):
    (name, kind, (t1, t2), (start, end), fine, coarse, expects, sim_extra, faults_extra) = sc
    sim = {"start_t2k": start, "faults": [{"kind": kind, "from": t1, "to": t2}]}
    sim.update(sim_extra)
    watch = Watch(t1, t2, [e[2] for e in expects])
    fs = faultsim.FaultSim(sim, node_cfg(calibration, **faults_extra), "soft", str(tmp_path), watch)
    fs.run(t1 - 600, coarse)  # quiet lead-in in coarse steps, then fine steps through the fault and its clearing
    fs.run(end, fine)
    evs = [(n, a, t) for n, a, t, _ in fs.events]
    names = [e[0] for e in expects]
    assert [e for e in evs if e[0] not in names] == [], "other faults raised: %r" % evs
    for (fault, reason, _, delay, clear_bound), t_obs in zip(expects, watch.t_obs):
        assert t_obs is not None, "%s never became observable in its window" % fault
        mine = [e for e in evs if e[0] == fault]
        assert [a for _, a, _ in mine] == [True, False], mine
        t_raise = mine[0][2]
        t_clear = mine[1][2]
        if reason is not None:
            details = [d for n, a, _, d in fs.events if n == fault and a]
            assert details[0]["reason"] == reason
        d_raise = t_raise - t_obs
        d_clear = t_clear - t2
        ROWS.append((name, fault + ("/" + reason if reason else ""), hm(t_obs), hm(t_raise), d_raise, delay,
                     d_clear, clear_bound, fine))
        # Within its delay of becoming observable, to a step; and not before it (the debounce works).
        assert delay - fine <= d_raise <= delay + fine, (fault, d_raise, delay)
        assert t_raise < t2
        assert 0 < d_clear <= clear_bound + fine, (fault, d_clear, clear_bound)
    assert fs.active() == []


HPS_SIM = {"nominal_w": 100.0, "standby_w": 0.0, "warmup_s": 240}
HPS_NODE = {"lamp": {"nominal_w": 100.0, "warmup_s": 240, "restrike_s": 300}}


@pytest.mark.parametrize("kind,fault", [(None, None), ("cycling", "cycling"), ("lamp_dead", "lamp_failure"),
                                        ("over_current", "over_current")])
def test_hps_post_with_warm_up_and_restrike(kind, fault, tmp_path):
    """A 100 W HPS post (run-up: 30 % power and 140 % current at strike; re-strike lockout): the warm-up must not
    look like a fault, and the faults are still seen."""
    cal = faultsim.FaultSim({"start_t2k": at(12), "lamp": HPS_SIM}, HPS_NODE, "soft", str(tmp_path / "cal"))
    cfg = dict(HPS_NODE, faults={"nominal_a": cal.calibrate(CAL_LEVELS, hold_s=600)})
    assert cal.events == []
    sim = {"start_t2k": at(12), "lamp": HPS_SIM}
    if kind is not None:
        sim["faults"] = [{"kind": kind, "from": at(19, 30), "to": at(21)}]
    fs = faultsim.FaultSim(sim, cfg, "soft", str(tmp_path / "run"))
    fs.run(at(8, 0, 1), 1)
    evs = [(n, a) for n, a, _, _ in fs.events]
    assert evs == ([] if fault is None else [(fault, True), (fault, False)])
    if fault is not None:
        assert at(19, 30) < fs.events[0][2] < at(21) < fs.events[1][2] < at(23, 30)
    # The sim's truth has the faults in it too (a cycling lamp's dropouts, a dead lamp's zero).
    assert abs(fs.energy_wh() - fs.true_wh) <= 0.01 * fs.true_wh


def test_light_stuck_twilight_value_is_between_dark_and_bright():
    # The "stuck" scenario above means the stuck_h rule only if the frozen reading trips no other rule.
    w = simmod.SimWorld({})
    lux = w.sensor_lux(at(18, 35))
    assert DEF["light_sensor"]["dark_lux"] < lux < DEF["light_sensor"]["bright_lux"], lux
    assert w.sensor_lux(at(12, 30)) > 10 * DEF["light_sensor"]["bright_lux"]


def test_relay_stuck_behind_dim_to_off_driver_with_default_thresholds(calibration, tmp_path):
    # The sim's default driver dims to off: behind a relay welded by day it draws only its ~1 W standby. That is
    # not "lit" (so no day_burning) but is >= relay_stuck.min_w through an open relay: relay_stuck, in time.
    seen = []

    def hook(fs, evs):
        if at(8) <= fs.world_now() < at(10):
            seen.append(dict(fs.inputs))

    sim = {"start_t2k": at(7), "faults": [{"kind": "relay_stuck_on", "from": at(8), "to": at(10)}]}
    fs = faultsim.FaultSim(sim, node_cfg(calibration), "soft", str(tmp_path), hook)
    f = fs.cfg["faults"]
    assert f["relay_stuck"] == DEF["relay_stuck"] and (f["lit_a"], f["lit_w"]) == (DEF["lit_a"], DEF["lit_w"])
    step = 10
    fs.run(at(11), step)
    # What the node saw through the weld: relay open, level 0, a draw between min_w and lit.
    assert len(seen) == 2 * 3600 // step
    assert all(not x["relay"] and x["level"] == 0 for x in seen)
    watts = [x["reading"][2] for x in seen]
    amps = [x["reading"][1] for x in seen]
    assert DEF["relay_stuck"]["min_w"] <= min(watts) and max(watts) < DEF["lit_w"] and max(amps) < DEF["lit_a"]
    evs = [(n, a, t) for n, a, t, _ in fs.events]
    assert [(n, a) for n, a, _ in evs] == [("relay_stuck", True), ("relay_stuck", False)], evs
    rs = DEF["relay_stuck"]
    assert rs["delay_s"] - step <= evs[0][2] - at(8) <= rs["delay_s"] + step
    assert 0 < evs[1][2] - at(10) <= rs["clear_s"] + step
    assert fs.active() == []


def test_uncalibrated_defaults_raise_no_alarm_in_a_night(tmp_path):
    # All defaults, no faults.nominal_a: current is not judged, and nothing else false-alarms through a day and a
    # night. The night is the one that mattered: at 60 % the sim's driver (PF ~0.82) draws well over W / V + tol,
    # which a W / V current expectation took for an over_current every night.
    stats = {100: 0, 60: 0, "a_over_w_v": 0}

    def hook(fs, evs):
        x = fs.inputs
        r = x["reading"]
        if not x["relay"] or r is None or x["level"] not in (100, 60):
            return
        stats[int(x["level"])] += 1
        exp = fs.faults.expected_a(x["level"], r[0])  # W / V without a table
        tol = max(exp * DEF["current"]["tol_pct"] / 100.0, DEF["current"]["min_tol_a"])
        if x["level"] == 60 and r[1] > exp + tol:
            stats["a_over_w_v"] += 1

    fs = faultsim.FaultSim({"start_t2k": at(12)}, None, "soft", str(tmp_path), hook)
    assert fs.cfg["faults"]["nominal_a"] == [] and fs.faults.calibration() == []
    fs.run(at(12, 0, 1), 60)
    # The night did run at both levels, and the dimmed current sat outside W / V +- tol all along (5.5 h at 60 %).
    assert stats[100] > 4 * 60 and stats[60] > 5 * 60
    assert stats["a_over_w_v"] == stats[60]
    assert fs.events == [], fs.events[:10]
    assert fs.active() == []


def test_supply_loss_on_power_on_boot_only(calibration, tmp_path):
    fs = faultsim.FaultSim({"start_t2k": at(20)}, node_cfg(calibration), "power_on", str(tmp_path / "a"))
    assert [(n, a, t) for n, a, t, _ in fs.events] == [("supply_loss", True, at(20)), ("supply_loss", False, at(20))]
    assert fs.events[0][3] == {"cause": "power_on"}
    assert fs.meter.counters()["supply_losses"] == 1
    fs.run(at(21), 1)
    assert len(fs.events) == 2 and fs.active() == []  # momentary: never active, never raised again
    for cause in ("soft", "wdt", "hard"):
        fs = faultsim.FaultSim({"start_t2k": at(20)}, node_cfg(calibration), cause, str(tmp_path / cause))
        fs.run(at(20, 10), 1)
        assert fs.events == [] and fs.meter.counters()["supply_losses"] == 0


def test_no_rtc_runs_on_the_photocell_without_false_alarm(calibration, tmp_path):
    # The RTC lost at boot: time not valid, no sun elevation, the photocell decides (lamp lit at night by default).
    sim = {"start_t2k": at(12), "faults": [{"kind": "no_rtc", "from": 0, "to": None}]}
    seen = {}

    def hook(fs, evs):
        h = (fs.world_now() - at(0)) // 3600
        seen[h] = (fs.level, fs.reason, fs.inputs["sun"])

    fs = faultsim.FaultSim(sim, node_cfg(calibration), "power_on", str(tmp_path), hook)
    assert fs.board.clock.now() < 86400 and not fs.time.valid  # the clock restarted at 2000-01-01
    fs.run(at(12, 0, 1), 10)
    assert [n for n, a, _, _ in fs.events] == ["supply_loss", "supply_loss"]  # the power-on, nothing else
    assert seen[22] == (100, "photocell:no-time", None)
    assert seen[13][0] == 0 and seen[10 + 24][0] == 0  # the photocell switches it off by day


def test_fault_inputs_match_the_real_node(calibration, tmp_path):
    """The real firmware Node, on its own SimBoard with the same world and clocks, gives FaultMonitor exactly the
    inputs FaultSim gives, step for step, through dusk, a cycling lamp, a dead meter and the 23:00 dimming."""
    sim = {"start_t2k": at(18), "faults": [{"kind": "cycling", "from": at(18, 45), "to": at(19, 15)},
                                           {"kind": "meter_dead", "from": at(19, 20), "to": at(19, 25)},
                                           {"kind": "lamp_dead", "from": at(22, 50), "to": at(23, 5)}]}
    cfg = configmod.validate(node_cfg(calibration))
    node, board, clk = real_node(tmp_path / "node", sim, cfg)
    got = []
    real_update = node.faults.update

    def spy(now, inp):
        got.append((board.clock.world_now(), dict(inp)))
        return real_update(now, inp)

    node.faults.update = spy
    node.time.boot(board.clock.now(), None)
    want = []
    fs = faultsim.FaultSim(sim, cfg, "soft", str(tmp_path / "fs"),
                           lambda s, e: want.append((s.world_now(), dict(s.inputs))))
    node.control_step(board.clock.ticks_ms())
    end = at(23, 15)
    while fs.world_now() < end:
        clk.ms += 1000
        node.control_step(board.clock.ticks_ms())
        fs.step(1)
    assert len(got) == len(want) > 5 * 3600
    for g, w in zip(got, want):
        assert g == w
    # The span was not trivial: the lamp came on, cycled, dimmed, and the meter was out for a while.
    levels = set(x["level"] for _, x in got)
    assert {0.0, 100.0, 60.0} <= levels
    assert any(x["reading"] is None for _, x in got)
    assert any(x["relay"] and x["reading"][2] == 0.0 for _, x in got if x["reading"] is not None)


def test_identify_blinking_raises_no_alarm(calibration, tmp_path):
    # identify blinks the board's relay against what the program asks (dark while "on" at night, lit while "off"
    # by day); node.py holds the electrical checks while it runs, so no alarm comes of it.
    cfg = configmod.validate(node_cfg(calibration))
    raised = []
    for hour, period_ms in ((21, 1000), (12, 1003)):  # exact 1 s control cadence at night; 3 ms late by day
        t0 = at(hour)
        node, board, clk = real_node(tmp_path / str(hour), {"start_t2k": t0}, cfg)
        node._event_fault = lambda now, ev: raised.append((hour, board.clock.world_now() - t0, ev[0], ev[1]))
        node.time.boot(board.clock.now(), None)
        against = 0  # steps where the board's relay differs from the program's: the blink did happen
        for i in range(700):
            if i == 60:
                reply = node.execute({"cmd": "identify", "id": "i1", "seconds": 600}, board.clock.now())
                assert reply["ok"]
            clk.ms += period_ms
            node.control_step(board.clock.ticks_ms())
            if board.lamp.relay != node.lamp.relay:
                against += 1
        assert against > 100, (hour, against)
        assert board.lamp.relay == node.lamp.relay  # identify over: the lamp is the program's again
    assert raised == []


def test_noisy_healthy_lamp_for_a_year_raises_no_alarm(calibration, tmp_path):
    """365 days of the sim's noise (clouds, headlights, sensor noise, mains drift) at 60 s steps: no alarm, with
    the defaults and the learnt calibration table, and with the defaults alone, uncalibrated (watched by a second
    monitor on the same inputs)."""
    start = faultsim.local_t2k(timebase.days_from_civil(2026, 1, 1), 12, 0, SITE)
    sim = dict(NOISY, start_t2k=start)
    cfg = configmod.validate(node_cfg(calibration))
    uncal = FaultMonitor(dict(cfg["faults"], nominal_a=[]), cfg["lamp"])
    other = []
    stats = {"on": 0, "dim": 0, "bright_dark": 0, "cars": 0}

    def hook(fs, evs):
        inp = fs.inputs
        other.extend(uncal.update(fs.board.clock.now(), inp))
        if inp["relay"]:
            stats["on"] += 1
            if inp["level"] == 60.0:
                stats["dim"] += 1
            if inp["lux"] > 1000.0:
                stats["cars"] += 1  # headlights seen by the sensor in the dark
        elif inp["sun"] > 30.0 and inp["lux"] < 30000.0:
            stats["bright_dark"] += 1  # a heavily clouded day

    fs = faultsim.FaultSim(sim, cfg, "soft", str(tmp_path), hook)
    steps = 365 * 1440
    fs.run(start + 60 * steps, 60)
    print("\nyear: %d steps, stats %r, energy %.1f kWh metered vs %.1f kWh true" % (
        fs.steps, stats, fs.energy_wh() / 1000.0, fs.true_wh / 1000.0))
    # The year did exercise the states that could false-alarm (a vacuous year would prove nothing).
    assert 0.45 * steps < stats["on"] < 0.55 * steps and stats["dim"] > 0.2 * steps
    assert stats["cars"] > 100 and stats["bright_dark"] > 1000
    assert fs.events == [], fs.events[:10]
    assert other == [], other[:10]
    assert abs(fs.energy_wh() - fs.true_wh) <= 0.01 * fs.true_wh


def test_energy_of_a_night_matches_the_sims_power_integral(tmp_path):
    """The default Padang program (100 % from sunset, 60 % 23:00-04:30, 100 % to sunrise) at 1 s steps: the
    node's metered Wh vs the exact integral of the sim's power, and that integral vs the program worked by hand."""
    fs = faultsim.FaultSim({"start_t2k": at(17)}, None, "soft", str(tmp_path))
    fs.run(at(7, 0, 1), 1)
    err = (fs.energy_wh() - fs.true_wh) / fs.true_wh
    print("\nnight: metered %.3f Wh, true %.3f Wh, error %+.4f %%" % (fs.energy_wh(), fs.true_wh, 100 * err))
    assert abs(err) < 0.01
    # The exact integral, independently: the sim's driver draws 1 W + 59 W x duty; on/off at the program's
    # sunset/sunrise (astro.sun_times), each fade 1.5 s (a second or two at an intermediate level: < 0.05 Wh).
    y, m, d = timebase.civil_from_days(DAY)
    sset = at(0) + int(astro.sun_times(y, m, d, SITE["lat"], SITE["lon"], SITE["utc_offset_min"])[1] * 60)
    y, m, d = timebase.civil_from_days(DAY + 1)
    srise = at(0, 0, 1) + int(astro.sun_times(y, m, d, SITE["lat"], SITE["lon"], SITE["utc_offset_min"])[0] * 60)
    w60 = 1.0 + 59.0 * 0.6
    hand = (60.0 * (at(23) - sset) + w60 * (at(4, 30, 1) - at(23)) + 60.0 * (srise - at(4, 30, 1))) / 3600.0
    assert abs(fs.true_wh - hand) < 0.2, (fs.true_wh, hand)


def _cli(exe, args, env=None):
    r = subprocess.run([exe, "tools/faultsim.py"] + args, cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    return r.returncode, r.stdout.strip().splitlines(), r.stderr


def test_cli_gives_the_same_run_on_micropython_and_cpython(tmp_path):
    args = ["--from-h", "18", "--hours", "3", "--fault", "meter_dead@19-19:10", "--fault", "lamp_dead@19:30-20",
            "--cause", "power_on", "--calibrate"]
    rc, cp, err = _cli(sys.executable, args + ["--dir", str(tmp_path / "cp")])
    assert rc == 0, err
    env = dict(os.environ, MICROPYPATH=ROOT + ":" + os.path.join(ROOT, "lib"))
    rc, mp, err = _cli(os.path.join(ROOT, ".venv", "bin", "micropython"), args + ["--dir", str(tmp_path / "mp")], env)
    assert rc == 0, "\n".join(mp) + err
    # Event lines: time, name, raised/cleared (the detail dicts print in each runtime's own key order).
    assert [x.split()[:4] for x in mp] == [x.split()[:4] for x in cp]
    assert mp[-1] == cp[-1] and cp[-1].startswith("10801 steps; active at the end: none; energy metered")
    names = [x.split()[2:4] for x in cp[1:-1]]
    assert names == [["supply_loss", "raised"], ["supply_loss", "cleared"],
                     ["current_sensor_fault", "raised"], ["current_sensor_fault", "cleared"],
                     ["lamp_failure", "raised"], ["lamp_failure", "cleared"]], cp
    for bad in (["--fault", "bogus@1-2"], ["--fault", "lamp_dead"], ["--frobnicate", "1"], ["--hours"]):
        rc, out, err = _cli(sys.executable, bad + ["--dir", str(tmp_path / "bad")])
        assert rc == 2, (bad, out, err)


# --- the light sensor stuck in photocell mode (issue 15): the flag takes the photocell out, day_burning sees it ----

PHOTOCELL = {"control": {"mode": "photocell"}}
FALLBACK = "program:default (light sensor fault)"


class Trace:
    """on_step hook: (world t, level, reason, inputs) of every step, and the first time each observable held."""

    def __init__(self, observables):
        self.steps = []
        self.observables = observables
        self.first = {k: None for k in observables}

    def __call__(self, fs, events):
        t = fs.world_now()
        self.steps.append((t, fs.level, fs.reason, dict(fs.inputs), fs.faults.light_fault()))
        for k, f in self.observables.items():
            if self.first[k] is None and f(fs.inputs):
                self.first[k] = t


def lit_by_day(inp):
    r = inp["reading"]
    return (inp["sun"] is not None and inp["sun"] >= DEF["day_burning"]["sun_deg"] and r is not None
            and r[1] >= DEF["lit_a"] and r[2] >= DEF["lit_w"])


def test_light_stuck_at_night_in_photocell_mode_raises_day_burning_then_stops_deciding(tmp_path):
    ls = DEF["light_sensor"]
    tr = Trace({"lit_by_day": lit_by_day,
                "dark_sun_high": lambda i: i["sun"] > ls["sun_high_deg"] and i["lux"] < ls["dark_lux"]})
    sim = {"start_t2k": at(1, 30, 1), "faults": [{"kind": "light_stuck", "from": at(2, 0, 1), "to": None}]}
    fs = faultsim.FaultSim(sim, PHOTOCELL, "soft", str(tmp_path), tr)
    step = 10
    fs.run(at(10, 0, 1), step)
    evs = [(n, a, t) for n, a, t, _ in fs.events]
    assert [(n, a) for n, a, _ in evs] == [("day_burning", True), ("light_sensor_fault", True),
                                           ("day_burning", False)], evs
    db = DEF["day_burning"]
    # day_burning delay_s after the lamp was first seen lit in daylight (the sun at sun_deg, ~06:50).
    assert at(6, 45, 1) < tr.first["lit_by_day"] < at(6, 55, 1)
    assert db["delay_s"] - step <= evs[0][2] - tr.first["lit_by_day"] <= db["delay_s"] + step
    # light_sensor_fault (dark_day) dark_day_h after the sun passed sun_high_deg over the frozen night reading.
    assert ls["dark_day_h"] * 3600 - step <= evs[1][2] - tr.first["dark_sun_high"] <= ls["dark_day_h"] * 3600 + step
    assert fs.events[1][3]["reason"] == "dark_day"
    # From the step after the raise the program rules (off by day) and says so; the lamp fades out (1.5 s) and
    # day_burning clears clear_s after the meter sees it dark.
    after = [s for s in tr.steps if s[0] > evs[1][2]]
    assert after and all(s[1] == 0 and s[2] == FALLBACK for s in after)
    dark_at = min(s[0] for s in after if not s[3]["relay"])
    assert db["clear_s"] - step <= evs[2][2] - dark_at <= db["clear_s"] + step
    # Before the flag the stuck photocell did rule: lit at 100 % in the morning, by the photocell.
    before = [s for s in tr.steps if at(4, 45, 1) <= s[0] <= evs[1][2]]
    assert all(s[1] == 100 and s[2] == "photocell" for s in before)
    assert fs.active() == ["light_sensor_fault"]


def test_light_stuck_by_day_in_photocell_mode_lights_the_street_once_flagged(tmp_path):
    ls = DEF["light_sensor"]
    tr = Trace({"bright_sun_low": lambda i: i["sun"] < ls["sun_low_deg"] and i["lux"] > ls["bright_lux"]})
    sim = {"start_t2k": at(13), "faults": [{"kind": "light_stuck", "from": at(13, 1), "to": None}]}
    fs = faultsim.FaultSim(sim, PHOTOCELL, "soft", str(tmp_path), tr)
    step = 10
    fs.run(at(1, 0, 1), step)
    evs = [(n, a, t) for n, a, t, _ in fs.events]
    assert [(n, a) for n, a, _ in evs] == [("light_sensor_fault", True)], evs
    assert fs.events[0][3]["reason"] == "bright_night"
    t_flag = evs[0][2]
    assert abs(t_flag - tr.first["bright_sun_low"] - ls["bright_night_h"] * 3600) <= step
    assert t_flag < at(19, 30)  # the street was dark from sunset (18:29) to here, no longer than that
    after = [s for s in tr.steps if s[0] > t_flag]
    assert all(s[2] == FALLBACK for s in after)
    assert [s[1] for s in after if s[0] < at(23)] == [100] * len([s for s in after if s[0] < at(23)])
    assert all(s[1] == 60 for s in after if at(23) <= s[0])
