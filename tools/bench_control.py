"""Benchmark: a simulated year of Controller.decide calls (one a minute, 525 600) per control mode, in seconds.

Run under the MicroPython unix port from the repo root:
    MICROPYPATH=.:lib .venv/bin/micropython tools/bench_control.py [astro|photocell|hybrid ...]
(CPython works too: .venv/bin/python tools/bench_control.py). The lux input is synthetic: bright by day, dark by
night, a car's headlights now and then, and a missing reading every 997th sample.
"""

import sys

sys.path.insert(0, ".")  # run from the repo root without MICROPYPATH on CPython

from firmware import control, photocell, program, timebase  # noqa: E402
from firmware.compat import ticks_diff, ticks_ms  # noqa: E402

MINUTES = 525600
START = timebase.days_from_civil(2026, 1, 1) * 86400 - 7 * 3600  # local midnight in Padang


def make_cfg(mode):
    return {
        "site": timebase.SITE_SCHEMA.check({}, "site"),
        "programs": program.PROGRAMS_SCHEMA.make_default(),
        "calendar": program.CALENDAR_SCHEMA.check([
            {"program": "default", "weekdays": [5, 6]},
            {"program": "default", "from": "2026-02-18", "to": "2026-03-19"},
            {"program": "default", "dates": ["12-25", "2026-03-20"]},
        ], "calendar"),
        "photocell": photocell.SCHEMA.check({}, "photocell"),
        "control": control.SCHEMA.check({"mode": mode}, "control"),
    }


def run(mode):
    c = control.Controller(make_cfg(mode))
    t = START
    switches = 0
    last = -1
    t0 = ticks_ms()
    for i in range(MINUTES):
        sod = (t + 25200) % 86400  # local seconds of the day (UTC+7)
        if 21900 <= sod < 65100:  # 06:05 .. 18:05
            lux = 12000.0
        elif i % 37 == 0:
            lux = 10000.0  # headlights
        else:
            lux = 3.0
        if i % 997 == 0:
            lux = None
        level, _ = c.decide(t, True, lux, None)
        if level != last:
            switches += 1
            last = level
        t += 60
    return ticks_diff(ticks_ms(), t0) / 1000.0, switches


def main(modes):
    for mode in modes:
        secs, switches = run(mode)
        print("%s: %d decide calls in %.2f s (%.1f us/call), %d level changes" % (
            mode, MINUTES, secs, secs * 1e6 / MINUTES, switches))


main(sys.argv[1:] or ["astro", "photocell", "hybrid"])
