"""Energy report: a program and calendar at a place over a year → burn hours, kWh, savings, money, and two PNG plots.

    .venv/bin/python tools/energy_report.py --place padang --tariff 1444.70 --currency IDR --lamps 12600 --out out

Runs tools/simyear.py's simulate() (the real control code in the sim's world) once, and compares the program with
"all night full power" (the lamp at its nominal watts from sunset to sunrise). Writes, under --out:
  energy_<name>_night.png   the level profile of one night (--night, default the longest night of the run), with
                            sunset, sunrise and civil twilight marked;
  energy_<name>_months.png  monthly energy, program vs all-night full power, for the fleet (--lamps).
CPython only (matplotlib, argparse); the simulation itself also runs on MicroPython (tools/simyear.py).
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import simyear  # noqa: E402
from firmware import astro, timebase  # noqa: E402

_DAY = 86400


def sun_marks(site, days_local):
    """(sunset, sunrise next morning, civil dusk, civil dawn next morning) of a night as t2k floats (None: none)."""
    out = []
    for day, which, dep in ((days_local, 1, 0.833), (days_local + 1, 0, 0.833), (days_local, 1, 6.0),
                            (days_local + 1, 0, 6.0)):
        noon = timebase.t2k_from_local(day, 720, site)
        off = timebase.local_offset_min(noon, site)
        y, m, d = timebase.civil_from_days(day)
        r = astro.sun_times(y, m, d, site["lat"], site["lon"], off, dep)
        out.append(None if r is None else day * _DAY - off * 60 + r[which] * 60.0)
    return tuple(out)


def run(a):
    """Simulate per the parsed arguments → (summary, night record, cfg, start_days, night_days)."""
    opts = {"days": a.days, "start": a.start, "place": a.place, "lat": a.lat, "lon": a.lon, "off": a.utc_offset_min,
            "config": a.config, "mode": a.mode, "watts": a.watts, "step": a.step_s, "loss": [], "faults": [],
            "noise": None, "headlights": None, "clouds": None, "seed": None}
    cfg, days, start_days, options, _ = simyear.build(opts)
    site = cfg["site"]
    t0 = simyear.start_noon(start_days, site)
    if a.night is not None:
        night = simyear.parse_day(a.night)
        if not start_days <= night < start_days + days:
            raise ValueError("--night %s is outside the simulated nights" % a.night)
    else:
        night = None
    rec = {"t": [], "dt": [], "level": [], "watts": []}
    lengths = {} if night is None else None

    def keep(t, dt, lamp_level, watts):
        rec["t"].append(t)
        rec["dt"].append(dt)
        rec["level"].append(lamp_level)
        rec["watts"].append(watts)

    def on_step(t, dt, level, reason, lux, lamp_level, watts, valid):
        k = start_days + (t - t0) // _DAY
        if lengths is not None:
            if lamp_level:
                lengths[k] = lengths.get(k, 0) + dt
        elif k == night:
            keep(t, dt, lamp_level, watts)

    summary = simyear.simulate(cfg, days, start_days, options, on_step)
    if night is None:
        # The longest lit night is known only after the run: simulate that night again for its profile. The world
        # is a seeded function of time, so it is the same night (the photocell starts afresh at noon, in daylight).
        night = max(sorted(lengths), key=lambda k: lengths[k]) if lengths else start_days
        simyear.simulate(cfg, 1, night, options,
                         lambda t, dt, lv, r, lux, ll, w, v: keep(t, dt, ll, w))
    rec["night"] = night
    return summary, rec, cfg, start_days


def fleet_figures(s, lamps, tariff):
    """Yearly fleet totals: kWh for the program and the baseline, savings, and money when a tariff is given."""
    prog = s["energy_kwh"] * lamps
    base = s["baseline"]["energy_kwh"] * lamps
    out = {"lamps": lamps, "program_kwh": round(prog, 3), "baseline_kwh": round(base, 3),
           "saved_kwh": round(base - prog, 3)}
    if tariff is not None:
        out["tariff_per_kwh"] = tariff
        out["program_cost"] = round(prog * tariff, 2)
        out["baseline_cost"] = round(base * tariff, 2)
        out["saved_cost"] = round((base - prog) * tariff, 2)
    return out


def text_report(s, fleet, currency, name):
    b = s["baseline"]
    lines = [
        "Energy report: %s — %d nights from %s, mode %s, %.0f W lamp" % (
            name, s["days"], s["start"], s["mode"], s["nominal_w"]),
        "                      burn hours        kWh   switch-ons",
        "  program           %10.1f %10.2f %12d" % (s["burn_h"], s["energy_kwh"], s["switch_ons"]),
        "  all night 100 %%   %10.1f %10.2f %12d" % (b["burn_h"], b["energy_kwh"], b["switch_ons"]),
        "  savings: %.1f %% (%.2f kWh per lamp)" % (s["savings_pct"], b["energy_kwh"] - s["energy_kwh"]),
        "  hours at level: " + ", ".join("%s %%: %.1f" % (k, v) for k, v in
                                          sorted(s["level_h"].items(), key=lambda kv: -int(kv[0]))
                                          if k != "0" and v >= 0.05),  # fades seen by 1 s steps: noise
    ]
    if fleet["lamps"] != 1 or "tariff_per_kwh" in fleet:
        lines.append("  fleet of %d lamp%s: %.1f kWh vs %.1f kWh all night, %.1f kWh saved" % (
            fleet["lamps"], "" if fleet["lamps"] == 1 else "s", fleet["program_kwh"], fleet["baseline_kwh"],
            fleet["saved_kwh"]))
    if "tariff_per_kwh" in fleet:
        lines.append("  at %s %s/kWh: %s %s vs %s %s, saving %s %s" % (
            "{:,.2f}".format(fleet["tariff_per_kwh"]), currency, _money(fleet["program_cost"]), currency,
            _money(fleet["baseline_cost"]), currency, _money(fleet["saved_cost"]), currency))
    lines.append("  months (kWh per lamp, program / all night):")
    for m in s["months"]:
        lines.append("    %s  %8.2f / %8.2f  (%5.1f h / %5.1f h)" % (
            m["month"], m["energy_kwh"], m["baseline_kwh"], m["burn_h"], m["baseline_burn_h"]))
    return "\n".join(lines)


def _money(x):
    # Cents only where they matter: a city's yearly bill in rupiah needs none.
    return "{:,.0f}".format(x) if abs(x) >= 1000 else "{:,.2f}".format(x)


def _num(x):
    return "{:,.0f}".format(x) if abs(x) >= 100 else "{:,.1f}".format(x)


def _local_hours(t, site, midnight):
    return (t - midnight) / 3600.0


def plot_night(rec, site, s, path, name):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    night = rec["night"]
    noon = timebase.t2k_from_local(night, 720, site)
    midnight = noon - 12 * 3600  # local midnight before the night (the offset at noon)
    sset, srise, cdusk, cdawn = sun_marks(site, night)
    # Step plot: each sample's level holds until the next sample.
    xs = [_local_hours(t, site, midnight) for t in rec["t"]]
    xs.append(xs[-1] + rec["dt"][-1] / 3600.0)
    ys = list(rec["level"]) + [rec["level"][-1]]
    fig, ax = plt.subplots(figsize=(9, 4.6), dpi=110)
    ax.fill_between(xs, ys, step="post", color="#f2b705", alpha=0.35, linewidth=0)
    ax.step(xs, ys, where="post", color="#b37f00", linewidth=1.8, label="lamp level (program)")
    ax.axhline(100, color="#444444", linestyle=":", linewidth=1.2, label="all night full power")
    if sset is not None and srise is not None:
        hs, hr = _local_hours(sset, site, midnight), _local_hours(srise, site, midnight)
        ax.axvspan(xs[0], hs, color="#d6eaff", alpha=0.7, linewidth=0, label="daylight")
        ax.axvspan(hr, xs[-1], color="#d6eaff", alpha=0.7, linewidth=0)
        if cdusk is not None and cdawn is not None:
            hd, hw = _local_hours(cdusk, site, midnight), _local_hours(cdawn, site, midnight)
            ax.axvspan(hs, hd, color="#8fa9c9", alpha=0.35, linewidth=0, label="civil twilight")
            ax.axvspan(hw, hr, color="#8fa9c9", alpha=0.35, linewidth=0)
        for h, label, side in ((hs, "sunset", "left"), (hr, "sunrise", "right")):
            ax.axvline(h, color="#c0392b", linewidth=1.4)
            # Beside the line, on the night side (clear above the 100 % line), so nothing cuts the text.
            ax.text(h + (0.1 if side == "left" else -0.1), 108, "%s %s" % (label, _hhmm(h)), color="#c0392b",
                    ha=side, va="center", fontsize=9)
        lo, hi = hs - 1.5, hr + 1.5
    else:
        lo, hi = xs[0], xs[-1]
    ax.set_xlim(max(lo, xs[0]), min(hi, xs[-1]))
    ax.set_ylim(0, 118)
    ax.set_ylabel("lamp level (%)")
    first = int(ax.get_xlim()[0]) + 1
    ticks = list(range(first, int(ax.get_xlim()[1]) + 1))
    step = 1 if len(ticks) <= 16 else 2
    ax.set_xticks(ticks[::step])
    ax.set_xticklabels([_hhmm(h) for h in ticks[::step]])
    ax.set_xlabel("local time")
    wh = sum(w * dt for w, dt in zip(rec["watts"], rec["dt"])) / 3600.0
    full = (srise - sset) / 3600.0 * s["nominal_w"] if sset is not None and srise is not None else 0.0
    y, m, d = timebase.civil_from_days(night)
    title = "%s, night of %04d-%02d-%02d: %.0f Wh" % (name, y, m, d, wh)
    if full:
        title += " vs %.0f Wh all night at %.0f W (%.0f %% saved)" % (full, s["nominal_w"], 100 * (1 - wh / full))
    ax.set_title(title, fontsize=10.5)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=4, fontsize=8.5, frameon=False)
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _hhmm(h):
    m = int(round(h * 60)) % 1440
    return "%02d:%02d" % (m // 60, m % 60)


def plot_months(s, fleet, path, name, currency):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lamps = fleet["lamps"]
    months = s["months"]
    labels = [m["month"] for m in months]
    prog = [m["energy_kwh"] * lamps for m in months]
    base = [m["baseline_kwh"] * lamps for m in months]
    unit, div = ("MWh", 1000.0) if max(base + [0]) >= 10000 else ("kWh", 1.0)
    prog = [p / div for p in prog]
    base = [b / div for b in base]
    x = list(range(len(months)))
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=110)
    w = 0.4
    ax.bar([i - w / 2 for i in x], base, w, color="#9aa5b1", label="all night full power")
    ax.bar([i + w / 2 for i in x], prog, w, color="#f2b705", label="program")
    for i, (p, b) in enumerate(zip(prog, base)):
        if b > 0:  # the month's saving, centred over its pair of bars
            ax.text(i, b * 1.015, "−%.0f %%" % (100 * (1 - p / b)), ha="center", va="bottom", fontsize=7.5,
                    color="#6b4f00")
    ax.set_xticks(x)
    ax.set_xticklabels([_month_label(lb) for lb in labels], fontsize=8.5)
    ax.set_ylabel("%s per month%s" % (unit, "" if lamps == 1 else " (%d lamps)" % lamps))
    ax.set_ylim(0, max(base + prog + [1e-9]) * 1.18)
    title = "%s: program %s %s vs %s %s all night at full power (%.1f %% saved)" % (
        name, _num(fleet["program_kwh"] / div), unit, _num(fleet["baseline_kwh"] / div), unit, s["savings_pct"])
    if "saved_cost" in fleet:
        title += "\nsaving %s %s a year at %s %s/kWh" % (
            _money(fleet["saved_cost"]), currency, "{:,.2f}".format(fleet["tariff_per_kwh"]), currency)
    ax.set_title(title, fontsize=10.5)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8.5, frameon=False)
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _month_label(ym):
    y, m = ym.split("-")
    return "%s\n%s" % (_MONTHS[int(m) - 1], y)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", help="node config JSON (programs, calendar, control, photocell, lamp, site)")
    p.add_argument("--place", choices=sorted(simyear.PLACES), help="a known place (default: the config's site, "
                                                                   "else Padang)")
    p.add_argument("--lat", type=float)
    p.add_argument("--lon", type=float)
    p.add_argument("--utc-offset-min", type=int)
    p.add_argument("--mode", choices=("astro", "photocell", "hybrid"))
    p.add_argument("--watts", type=float, help="lamp power at 100 %% (default: the config's lamp.nominal_w)")
    p.add_argument("--tariff", type=float, help="price of a kWh, to show money")
    p.add_argument("--currency", default="", help="label for --tariff amounts (e.g. IDR)")
    p.add_argument("--lamps", type=int, default=1, help="fleet size: multiplies every figure")
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--start", default="2026-01-01", help="first night, YYYY-MM-DD")
    p.add_argument("--night", help="night to plot, YYYY-MM-DD (default: the longest lit night)")
    p.add_argument("--step-s", type=int, default=60)
    p.add_argument("--name", help="name in titles and file names (default: the place, else 'site')")
    p.add_argument("--out", default="out", help="directory for the PNGs")
    p.add_argument("--json", action="store_true", help="print the figures as JSON instead of text")
    p.add_argument("--no-plots", action="store_true")
    a = p.parse_args(argv)
    if a.lamps < 1:
        p.error("--lamps must be >= 1")
    try:
        s, rec, cfg, start_days = run(a)
    except ValueError as e:
        p.error(str(e))
    name = a.name or a.place or ("padang" if a.config is None and a.lat is None else "site")
    fleet = fleet_figures(s, a.lamps, a.tariff)
    files = {}
    if not a.no_plots:
        os.makedirs(a.out, exist_ok=True)
        files["night"] = os.path.join(a.out, "energy_%s_night.png" % name)
        files["months"] = os.path.join(a.out, "energy_%s_months.png" % name)
        title = name[:1].upper() + name[1:]
        plot_night(rec, cfg["site"], s, files["night"], title)
        plot_months(s, fleet, files["months"], title, a.currency)
    if a.json:
        print(json.dumps({"summary": s, "fleet": fleet, "night": simyear.day_str(rec["night"]), "files": files},
                         indent=1))
    else:
        print(text_report(s, fleet, a.currency, name))
        for k in sorted(files):
            print("wrote", files[k])
    return 0


if __name__ == "__main__":
    sys.exit(main())
