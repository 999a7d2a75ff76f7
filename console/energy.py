"""Energy from the posts' own meters: per node and month, beside what the lamp would have used burning all night.

The node's `energy_wh` is a counter it keeps through power cuts (firmware/metering.py), so what a month used is
the sum of the counter's steps between telemetry samples that fall in it. The baseline is the lamp's nominal power
over the dark part of the same steps (sunset to sunrise at the post's site, from tools/energy_report.py's night
marks), so both figures cover exactly the time the console heard the post.
"""

import time

import energy_report  # tools/energy_report.py: sunset/sunrise of a night, the same marks its plots use
from firmware import config as configmod

T2K_OFFSET = 946684800  # Unix seconds at 2000-01-01, the firmware's epoch
_DAY = 86400
MAX_STEP_S = 6 * 3600  # a longer silence is not counted in the baseline: the console does not know what burned
_DEFAULTS = configmod.defaults()


class Nights:
    """Dark intervals (sunset → next sunrise, Unix seconds) per site and local day, computed once each."""

    def __init__(self):
        self.cache = {}

    def night(self, site, day_local):
        key = (round(site["lat"], 2), round(site["lon"], 2), site["utc_offset_min"], day_local)
        if key not in self.cache:
            if len(self.cache) > 20000:
                self.cache.clear()
            sset, srise = energy_report.sun_marks(site, day_local)[:2]
            self.cache[key] = None if sset is None or srise is None else (sset + T2K_OFFSET, srise + T2K_OFFSET)
        return self.cache[key]

    def dark_seconds(self, t0, t1, site):
        """Seconds of [t0, t1) (Unix) between sunset and sunrise at the site."""
        if t1 <= t0:
            return 0.0
        off = site["utc_offset_min"] * 60
        first = (t0 - T2K_OFFSET + off) // _DAY - 1
        last = (t1 - T2K_OFFSET + off) // _DAY
        dark = 0.0
        for day in range(int(first), int(last) + 1):
            n = self.night(site, day)
            if n is not None:
                dark += max(0.0, min(t1, n[1]) - max(t0, n[0]))
        return dark


def month_of(t, site):
    """'YYYY-MM' of a Unix time in the site's standard local time."""
    return time.strftime("%Y-%m", time.gmtime(t + site["utc_offset_min"] * 60))


def lamp_and_site(config):
    """(nominal watts, site section) from a node's config, the defaults where it is not known yet."""
    cfg = config or _DEFAULTS
    lamp = cfg.get("lamp") or _DEFAULTS["lamp"]
    site = cfg.get("site") or _DEFAULTS["site"]
    return float(lamp.get("nominal_w") or _DEFAULTS["lamp"]["nominal_w"]), site


def step(nights, prev, counter_wh, t, config):
    """One telemetry sample's contribution: (month, wh, baseline_wh), or None when there is nothing to count.

    `prev` is the (counter_wh, t) of the post's previous sample. A counter that went down was reset (a new meter):
    only what it counted since counts."""
    if prev is None or prev[1] is None or prev[0] is None or t <= prev[1]:
        return None
    watts, site = lamp_and_site(config)
    wh = counter_wh - prev[0] if counter_wh >= prev[0] else counter_wh
    dt = t - prev[1]
    base = watts * nights.dark_seconds(prev[1], t, site) / 3600.0 if dt <= MAX_STEP_S else 0.0
    return month_of(t, site), wh, base


def by_group(rows, groups_of):
    """[(node, month, wh, baseline)] → {group: {month: [kwh, baseline_kwh]}}; a node counts in each of its groups."""
    out = {}
    for node, month, wh, base in rows:
        for g in groups_of.get(node) or ["(no group)"]:
            cell = out.setdefault(g, {}).setdefault(month, [0.0, 0.0])
            cell[0] += wh / 1000.0
            cell[1] += base / 1000.0
    return out

