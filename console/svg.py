"""Hand-drawn SVG for the pages: the map (posts, groups, a scale bar — no tiles, works offline) and small charts.

Everything is plain markup built server-side; the browser needs no library. Colours come from CSS classes
(console/static/console.css), so the live script only swaps a class when a post changes.
"""

import math
import time
from html import escape

MAP_W, MAP_H = 1000, 520
_M_PER_DEG_LAT = 110540.0
_M_PER_DEG_LON = 111320.0


def _a(v):
    return escape(str(v), quote=True)


class Projection:
    """Equirectangular around the posts' middle: metres east/north, fitted into the map box with a margin."""

    def __init__(self, points, w=MAP_W, h=MAP_H, margin=40):
        lats = [p[0] for p in points] or [0.0]
        lons = [p[1] for p in points] or [0.0]
        self.lat0 = (min(lats) + max(lats)) / 2
        self.lon0 = (min(lons) + max(lons)) / 2
        self.k = math.cos(math.radians(self.lat0))
        xs = [(lo - self.lon0) * _M_PER_DEG_LON * self.k for lo in lons]
        ys = [(la - self.lat0) * _M_PER_DEG_LAT for la in lats]
        span_x = max(max(xs) - min(xs), 50.0)
        span_y = max(max(ys) - min(ys), 50.0)
        self.scale = min((w - 2 * margin) / span_x, (h - 2 * margin) / span_y)  # px per metre
        self.cx, self.cy = w / 2, h / 2
        self.w, self.h = w, h

    def xy(self, lat, lon):
        x = (lon - self.lon0) * _M_PER_DEG_LON * self.k * self.scale + self.cx
        y = self.cy - (lat - self.lat0) * _M_PER_DEG_LAT * self.scale
        return round(x, 1), round(y, 1)


def _hull(points):
    """Convex hull (monotone chain) of [(x, y)]."""
    pts = sorted(set(points))
    if len(pts) < 3:
        return pts

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower, upper = [], []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


def _nice_metres(target):
    for m in (10, 20, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000, 20000, 50000):
        if m >= target:
            return m
    return 100000


def map_svg(posts):
    """The city map: `posts` are Post summaries; those without lat/lon are left out (the page lists them)."""
    located = [p for p in posts if p["lat"] is not None and p["lon"] is not None]
    proj = Projection([(p["lat"], p["lon"]) for p in located])
    out = ['<svg id="map" viewBox="0 0 %d %d" role="img" aria-label="map of the lamp posts">' % (MAP_W, MAP_H),
           '<rect class="map-bg" x="0" y="0" width="%d" height="%d"/>' % (MAP_W, MAP_H)]
    out.append(_graticule(proj))
    groups = {}
    for p in located:
        for g in p["groups"]:
            groups.setdefault(g, []).append(proj.xy(p["lat"], p["lon"]))
    # A group that holds every post (a fleet-wide group) would only shade the whole map: drawn as streets are not.
    drawn = [(g, pts) for g, pts in sorted(groups.items()) if len(pts) < len(located) or len(groups) == 1]
    out.append('<g class="groups">')
    for g, pts in drawn:
        hull = _hull(pts)
        if len(hull) >= 3:
            out.append('<polygon class="group" points="%s"><title>group %s</title></polygon>' % (
                " ".join("%s,%s" % xy for xy in hull), _a(g)))
        elif len(hull) == 2:
            out.append('<polyline class="group" points="%s"/>' % " ".join("%s,%s" % xy for xy in hull))
    for g, pts in drawn:
        x = sum(p[0] for p in pts) / len(pts)
        y = min(p[1] for p in pts) - 12
        out.append('<text class="group-label" x="%.0f" y="%.0f">%s</text>' % (x, max(14, y), _a(g)))
    out.append('</g><g class="posts">')
    r = 6 if len(located) <= 200 else (4 if len(located) <= 2000 else 2.5)
    for p in located:
        x, y = proj.xy(p["lat"], p["lon"])
        out.append('<circle class="post %s" data-id="%s" cx="%s" cy="%s" r="%s"><title>%s</title></circle>' % (
            p["look"], _a(p["id"]), x, y, r, _a("%s: %s" % (p["id"], describe(p)))))
    out.append('</g>')
    # Scale bar: about a fifth of the width, rounded to a length people read at a glance.
    metres = _nice_metres(MAP_W / 5 / proj.scale)
    px = metres * proj.scale
    x0, y0 = 24, MAP_H - 24
    label = "%g km" % (metres / 1000.0) if metres >= 1000 else "%d m" % metres
    out.append('<g class="scale"><rect x="%d" y="%d" width="%.1f" height="6"/><text x="%d" y="%d">%s</text></g>' % (
        x0, y0, px, x0, y0 - 6, label))
    out.append('<text class="north" x="%d" y="30">N ↑</text>' % (MAP_W - 40))
    out.append('</svg>')
    return "\n".join(out)


def _graticule(proj):
    """Faint lines of latitude and longitude with their values at the edges: where on Earth, without tiles."""
    deg_per_px = 1.0 / (proj.scale * _M_PER_DEG_LAT)
    span = deg_per_px * MAP_W
    step = next((s for s in (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0) if span / s <= 10),
                2.0)
    lat_top = proj.lat0 + (proj.cy) * deg_per_px
    lat_bottom = proj.lat0 - (MAP_H - proj.cy) * deg_per_px
    lon_left = proj.lon0 - proj.cx * deg_per_px / proj.k
    lon_right = proj.lon0 + (MAP_W - proj.cx) * deg_per_px / proj.k
    out = ['<g class="graticule">']
    v = math.ceil(lat_bottom / step) * step
    while v <= lat_top:
        y = proj.xy(v, proj.lon0)[1]
        out.append('<line x1="0" x2="%d" y1="%.1f" y2="%.1f"/><text x="6" y="%.1f">%s</text>' % (
            MAP_W, y, y, y - 3, "%.4f°" % v))
        v += step
    v = math.ceil(lon_left / step) * step
    while v <= lon_right:
        x = proj.xy(proj.lat0, v)[0]
        out.append('<line x1="%.1f" x2="%.1f" y1="0" y2="%d"/><text x="%.1f" y="%d">%s</text>' % (
            x, x, MAP_H, x + 3, MAP_H - 6, "%.4f°" % v))
        v += step
    out.append('</g>')
    return "".join(out)


def describe(p):
    if p["look"] == "offline":
        return "offline"
    bits = []
    if p["level"] is not None:
        bits.append("%g %%" % p["level"])
    if p["reason"]:
        bits.append(p["reason"])
    if p["faults"]:
        bits.append("faults: " + ", ".join(p["faults"]))
    return " · ".join(bits) or p["look"]


def _ticks(lo, hi, n=5):
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw), default=raw)
    first = math.ceil(lo / step) * step
    out = []
    v = first
    while v <= hi + 1e-9:
        out.append(round(v, 6))
        v += step
    return out


def _time_ticks(t0, t1, offset_s):
    span = t1 - t0
    for step in (600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400):
        if span / step <= 8:
            break
    first = (int(t0 + offset_s) // step + 1) * step - offset_s
    fmt = "%H:%M" if step < 86400 else "%d %b"
    return [(t, time.strftime(fmt, time.gmtime(t + offset_s))) for t in range(int(first), int(t1) + 1, int(step))]


def line_chart(series, t0, t1, y_max, y_label, offset_s=0, step=False, marks=(), w=1200, h=250, chart_id=None):
    """Lines over time. series: [(label, css class, [(t, value or None)])]; marks: [(t, label)] vertical lines.
    Times are Unix seconds, labelled in local time (offset_s from UTC)."""
    left, right, top, bottom = 48, 12, 30, 30
    pw, ph = w - left - right, h - top - bottom
    t1 = max(t1, t0 + 1)

    def X(t):
        return left + (t - t0) / (t1 - t0) * pw

    def Y(v):
        return top + ph - min(max(v, 0.0), y_max) / y_max * ph

    out = ['<svg class="chart" %sviewBox="0 0 %d %d" role="img" aria-label="%s">' % (
        'id="%s" ' % _a(chart_id) if chart_id else "", w, h, _a(y_label))]
    for v in _ticks(0, y_max):
        out.append('<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/><text class="ytick" x="%d" y="%.1f">'
                   '%g</text>' % (left, w - right, Y(v), Y(v), left - 6, Y(v) + 4, v))
    for t, text in _time_ticks(t0, t1, offset_s):
        out.append('<line class="grid" x1="%.1f" x2="%.1f" y1="%d" y2="%d"/><text class="xtick" x="%.1f" y="%d">%s'
                   '</text>' % (X(t), X(t), top, top + ph, X(t), h - 10, text))
    for t, text in marks:
        if t0 <= t <= t1:
            out.append('<line class="mark" x1="%.1f" x2="%.1f" y1="%d" y2="%d"/><text class="mark-label" x="%.1f" '
                       'y="%d">%s</text>' % (X(t), X(t), top, top + ph, X(t) + 4, top + 12, _a(text)))
    for label, css, points in series:
        d, pen = [], "M"
        last = None
        for t, v in points:
            if v is None:
                pen = "M"
                continue
            if step and last is not None and pen == "L":
                d.append("L%.1f,%.1f" % (X(t), Y(last)))
            d.append("%s%.1f,%.1f" % (pen, X(t), Y(v)))
            pen, last = "L", v
        if step and last is not None:
            d.append("L%.1f,%.1f" % (X(t1), Y(last)))
        out.append('<path class="line %s" d="%s"><title>%s</title></path>' % (_a(css), " ".join(d), _a(label)))
    out.append('<text class="ylabel" x="6" y="%d">%s</text>' % (top - 12, _a(y_label)))
    legend_x = w - right - sum(30 + 7 * len(label) for label, _, _ in series)  # above the plot, on the right
    for label, css, _ in series:
        out.append('<rect class="swatch %s" x="%d" y="%d" width="10" height="10"/><text class="legend" x="%d" '
                   'y="%d">%s</text>' % (_a(css), legend_x, 6, legend_x + 14, 15, _a(label)))
        legend_x += 30 + 7 * len(label)
    out.append('</svg>')
    return "".join(out)


def bar_chart(groups, w=1200, h=280, unit="kWh"):
    """Paired bars: groups = [(label, measured, baseline)]."""
    left, right, top, bottom = 56, 12, 14, 44
    pw, ph = w - left - right, h - top - bottom
    top_v = max([b for _, m, b in groups] + [m for _, m, b in groups] + [1e-9]) * 1.1
    out = ['<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="energy per month">' % (w, h)]
    for v in _ticks(0, top_v):
        y = top + ph - v / top_v * ph
        out.append('<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/><text class="ytick" x="%d" y="%.1f">'
                   '%g</text>' % (left, w - right, y, y, left - 6, y + 4, v))
    n = max(1, len(groups))
    slot = pw / n
    bw = min(28.0, slot / 3)
    for i, (label, measured, baseline) in enumerate(groups):
        cx = left + slot * (i + 0.5)
        for k, (v, css) in enumerate(((baseline, "baseline"), (measured, "measured"))):
            bh = v / top_v * ph
            out.append('<rect class="bar %s" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: %.1f %s</title>'
                       '</rect>' % (css, cx - bw + k * bw, top + ph - bh, bw - 2, bh, css, v, unit))
        out.append('<text class="xtick" x="%.1f" y="%d">%s</text>' % (cx, h - 26, _a(label)))
        if baseline > 0:
            out.append('<text class="saving" x="%.1f" y="%d">−%.0f %%</text>' % (
                cx, h - 10, 100 * (1 - measured / baseline)))
    out.append('<text class="ylabel" x="6" y="%d">%s</text></svg>' % (top - 2, unit))
    return "".join(out)
