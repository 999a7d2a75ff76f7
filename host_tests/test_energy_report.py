"""tools/energy_report.py: its figures agree with simyear.simulate(), its PNGs are real images, and the default
Padang program saves what the program itself implies (CPython only: subprocess, matplotlib)."""

import json
import os
import re
import struct
import subprocess
import sys

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))

import simyear  # noqa: E402
from drivers.sim import SIM_SCHEMA  # noqa: E402
from firmware import astro, config, timebase  # noqa: E402

DAYS = 120
TARIFF = 1444.70
LAMPS = 250


def report(tmp_path, *extra):
    r = subprocess.run([sys.executable, "tools/energy_report.py", "--place", "padang", "--days", str(DAYS),
                        "--out", str(tmp_path)] + list(extra), cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def expected_padang_savings(days, start_days):
    """From the program alone: 100 % from sunset to 23:00 and from 04:30 to sunrise, 60 % in between, against
    100 % all night; the lamp draws standby + (nominal - standby) x duty (the sim's lamp, linear curve)."""
    standby = SIM_SCHEMA.check({}, "")["lamp"]["standby_w"]
    nominal = 60.0
    w60 = standby + (nominal - standby) * 0.6
    prog = full = 0.0
    for n in range(start_days, start_days + days):
        y, m, d = timebase.civil_from_days(n)
        y2, m2, d2 = timebase.civil_from_days(n + 1)
        sset = astro.sun_times(y, m, d, -0.95, 100.35, 420)[1]
        srise = astro.sun_times(y2, m2, d2, -0.95, 100.35, 420)[0] + 1440
        night_h = (srise - sset) / 60.0
        dim_h = (1440 + 270 - 1380) / 60.0  # 23:00 → 04:30
        prog += (night_h - dim_h) * nominal + dim_h * w60
        full += night_h * nominal
    return 100.0 * (1.0 - prog / full)


def test_report_agrees_with_simulate_and_draws_real_pngs(tmp_path):
    out = json.loads(report(tmp_path, "--json", "--tariff", str(TARIFF), "--lamps", str(LAMPS), "--currency", "IDR"))
    s = out["summary"]
    # The same simulation run here, summing watts x time step by step.
    cfg = config.validate({})
    start = simyear.parse_day("2026-01-01")
    acc = {"wh": 0.0, "on_s": 0}

    def cb(t, dt, level, reason, lux, lamp_level, watts, valid):
        acc["wh"] += watts * dt / 3600.0
        acc["on_s"] += dt if lamp_level else 0

    ref = simyear.simulate(cfg, DAYS, start, {}, cb)
    assert abs(s["energy_kwh"] - acc["wh"] / 1000.0) < 1e-3
    assert abs(s["burn_h"] - acc["on_s"] / 3600.0) < 1e-3
    for k in ("energy_kwh", "burn_h", "switch_ons", "savings_pct", "months", "baseline"):
        assert s[k] == ref[k], k
    assert abs(sum(m["energy_kwh"] for m in s["months"]) - s["energy_kwh"]) < 1e-3
    # Fleet and money are the per-lamp figures scaled.
    f = out["fleet"]
    assert abs(f["program_kwh"] - LAMPS * s["energy_kwh"]) < 0.01
    assert abs(f["saved_kwh"] - LAMPS * (s["baseline"]["energy_kwh"] - s["energy_kwh"])) < 0.01
    assert abs(f["saved_cost"] - f["saved_kwh"] * TARIFF) < 1.0
    # Savings: what the program implies, within rounding of switch times to the minute.
    want = expected_padang_savings(DAYS, start)
    assert 15.0 < want < 21.0
    assert abs(s["savings_pct"] - want) < 0.3, (s["savings_pct"], want)
    # The plots: real PNGs, of a readable size, not empty canvases.
    for key in ("night", "months"):
        path = out["files"][key]
        assert os.path.dirname(path) == str(tmp_path)
        w, h = png_size(path)
        assert 700 <= w <= 2000 and 350 <= h <= 1200, (key, w, h)
        assert 15000 < os.path.getsize(path) < 2000000


def test_text_report_shows_the_same_figures(tmp_path):
    text = report(tmp_path, "--no-plots", "--days", "30")
    cfg = config.validate({})
    s = simyear.simulate(cfg, 30, simyear.parse_day("2026-01-01"), {})
    m = re.search(r"program\s+([\d.]+)\s+([\d.]+)\s+(\d+)", text)
    assert m, text
    assert float(m.group(1)) == round(s["burn_h"], 1)
    assert float(m.group(2)) == round(s["energy_kwh"], 2)
    assert int(m.group(3)) == s["switch_ons"] == 30
    m = re.search(r"savings: ([\d.]+) %", text)
    assert float(m.group(1)) == round(s["savings_pct"], 1)
    assert "wrote" not in text and not os.listdir(tmp_path)


def test_report_refuses_a_night_outside_the_run(tmp_path):
    r = subprocess.run([sys.executable, "tools/energy_report.py", "--days", "10", "--night", "2026-03-01",
                        "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "outside" in r.stderr
