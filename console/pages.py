"""The console's pages (map, fleet, alarms, a post, energy, login) as HTML built from the live fleet and the store.

Each function takes the app (its `fleet`, `store`, `commander`), the session and the query, and returns the page.
The live script (static/console.js) keeps them current from the event stream without a reload.
"""

import json
import time
import urllib.parse

from console import energy, svg
from console.html import ago, csrf_field, esc, local, look_chip, page, utc
from console.live import LOOKS
from firmware import config as configmod

PERIODS = (("1h", 3600), ("6h", 6 * 3600), ("24h", 86400), ("7d", 7 * 86400), ("30d", 30 * 86400))
_RAW_UP_TO_S = 2 * 86400  # longer periods are drawn from the hourly aggregates


def counts_bar(counts):
    cells = "".join('<div class="count %s" data-look="%s"><b id="count-%s">%d</b><span>%s</span></div>' % (
        k, k, k, counts.get(k, 0), k) for k in LOOKS if k != "unknown" or counts.get(k))
    return '<div class="counts"><div class="count total"><b id="count-total">%d</b><span>posts</span></div>%s</div>' % (
        counts.get("total", 0), cells)


def _shell(app, title, body, session, active):
    return page(title, body, session, active, alarms=len(app.store.open_alarms()))


def map_page(app, session, q):
    posts = app.fleet.snapshot()
    missing = [p["id"] for p in posts if p["lat"] is None or p["lon"] is None]
    legend = "".join('<span class="legend-item"><i class="dot %s"></i>%s</span>' % (k, k)
                     for k in ("lit", "dimmed", "off", "fault", "offline"))
    note = ""
    if missing:
        note = '<p class="note">%d post(s) without a location yet (their config has not arrived): %s</p>' % (
            len(missing), esc(", ".join(missing[:20])) + (" …" if len(missing) > 20 else ""))
    body = ('<div class="toolbar"><h1>City map</h1>%s</div>%s<div class="card map-card">%s'
            '<div class="legend">%s</div></div>%s') % (
        "", counts_bar(app.fleet.counts()), svg.map_svg(posts), legend, note)
    return _shell(app, "Map", body, session, "map")


FLEET_PAGE_ROWS = 250  # a city of 50,000 posts is filtered and sorted here, not in the browser
_SORTS = {"post": lambda p: p["id"], "state": lambda p: p["look"], "level": lambda p: -1 if p["level"] is None
          else p["level"], "reason": lambda p: p["reason"] or "", "faults": lambda p: ",".join(p["faults"]),
          "groups": lambda p: ",".join(p["groups"]), "firmware": lambda p: p["fw"] or "",
          "energy": lambda p: p["energy_wh"] or 0.0, "heard": lambda p: p["heard"] or 0.0}


def _matches(p, text, group, look, fw):
    if group and group not in p["groups"]:
        return False
    if look and p["look"] != look:
        return False
    if fw and p["fw"] != fw:
        return False
    if text:
        hay = " ".join([p["id"], p["reason"] or "", " ".join(p["faults"]), " ".join(p["groups"])]).lower()
        return text.lower() in hay
    return True


def fleet_page(app, session, q):
    posts = app.fleet.snapshot()
    groups = app.fleet.groups()
    fws = sorted({p["fw"] for p in posts if p["fw"]})
    text, group, look, fw = (q.get(k, "").strip() for k in ("q", "group", "look", "fw"))
    sort = q.get("sort") if q.get("sort") in _SORTS else "post"
    desc = q.get("dir") == "desc"
    chosen = sorted((p for p in posts if _matches(p, text, group, look, fw)), key=_SORTS[sort], reverse=desc)
    try:
        page_no = max(0, int(q.get("page", "0")))
    except ValueError:
        page_no = 0
    shown = chosen[page_no * FLEET_PAGE_ROWS:(page_no + 1) * FLEET_PAGE_ROWS]
    rows = []
    for p in shown:
        rows.append('<tr data-id="%s" data-look="%s"><td><a href="/post/%s">%s</a></td><td>%s</td><td>%s</td>'
                    '<td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>' % (
                        esc(p["id"]), p["look"], esc(p["id"]), esc(p["id"]), look_chip(p["look"]),
                        "-" if p["level"] is None else "%g %%" % p["level"], esc(p["reason"] or "-"),
                        esc(", ".join(p["faults"]) or "-"), esc(", ".join(p["groups"]) or "-"), esc(p["fw"] or "-"),
                        "-" if p["energy_wh"] is None else "%.1f" % (p["energy_wh"] / 1000.0),
                        ago(p["heard"]) if p["heard"] else "-"))
    keep = {k: v for k, v in (("q", text), ("group", group), ("look", look), ("fw", fw)) if v}

    def link(**over):
        d = dict(keep, sort=sort, dir="desc" if desc else "asc")
        d.update(over)
        return "/fleet?" + urllib.parse.urlencode(d)

    def opts(values, current):
        return "".join('<option value="%s"%s>%s</option>' % (esc(v), " selected" if v == current else "", esc(v))
                       for v in values)

    heads = "".join('<th class="%s"><a href="%s">%s</a></th>' % (
        ("desc" if desc else "asc") if key == sort else "", esc(link(sort=key, dir="asc" if key != sort or desc
                                                                     else "desc", page=0)), label)
        for key, label in (("post", "post"), ("state", "state"), ("level", "level"), ("reason", "reason"),
                           ("faults", "faults"), ("groups", "groups"), ("firmware", "firmware"),
                           ("energy", "energy kWh"), ("heard", "last heard")))
    filters = ('<form class="filters" id="fleet-filters" method="get" action="/fleet">'
               '<input type="search" name="q" id="f-text" value="%s" placeholder="search id, reason, fault…">'
               '<select name="group" id="f-group"><option value="">all groups</option>%s</select>'
               '<select name="look" id="f-look"><option value="">any state</option>%s</select>'
               '<select name="fw" id="f-fw"><option value="">any firmware</option>%s</select>'
               '<input type="hidden" name="sort" value="%s"><input type="hidden" name="dir" value="%s">'
               '<span id="f-shown">%s</span></form>') % (
        esc(text), opts(groups, group), opts(LOOKS, look), opts(fws, fw), sort, "desc" if desc else "asc",
        "%d–%d of %d%s" % (page_no * FLEET_PAGE_ROWS + 1 if shown else 0, page_no * FLEET_PAGE_ROWS + len(shown),
                           len(chosen), "" if len(chosen) == len(posts) else " (of %d posts)" % len(posts)))
    pager = ""
    if len(chosen) > FLEET_PAGE_ROWS:
        pager = '<div class="pager">%s%s</div>' % (
            '<a href="%s">← previous</a>' % esc(link(page=page_no - 1)) if page_no else "",
            '<a href="%s">next →</a>' % esc(link(page=page_no + 1))
            if (page_no + 1) * FLEET_PAGE_ROWS < len(chosen) else "")
    table = ('<table class="data sortable" id="fleet-table"><thead><tr>%s</tr></thead><tbody>%s</tbody></table>' % (
        heads, "".join(rows)))
    body = '<div class="toolbar"><h1>Fleet</h1></div>%s%s<div class="card">%s%s%s</div>' % (
        counts_bar(app.fleet.counts()), group_command_form(session, dict(groups, all=len(posts))), filters, table,
        pager)
    return _shell(app, "Fleet", body, session, "fleet")


def alarms_page(app, session, q):
    active = app.store.open_alarms()
    history = app.store.alarm_history(100)
    can = session and session["role"] == "operator"
    rows = []
    for a in active:
        ack = ('<span class="muted">acknowledged by %s %s ago</span>' % (esc(a["acked_by"]), ago(a["acked_rx"]))
               if a["acked_by"] else
               ('<form method="post" action="/alarms/%d/ack">%s<button class="small">acknowledge</button></form>' % (
                   a["id"], csrf_field(session)) if can else '<span class="muted">not acknowledged</span>'))
        rows.append('<tr class="alarm-row%s" data-alarm="%s"><td><a href="/post/%s">%s</a></td><td><b>%s</b></td>'
                    '<td>%s</td><td>%s</td><td class="detail">%s</td><td>%s</td></tr>' % (
                        " acked" if a["acked_by"] else "", esc(a["name"]), esc(a["node"]), esc(a["node"]),
                        esc(a["name"]), ago(a["raised_rx"]), utc(a["raised_rx"]),
                        esc(detail_text(a["detail"])), ack))
    active_html = ('<table class="data" id="active-alarms"><thead><tr><th>post</th><th>alarm</th><th>age</th>'
                   '<th>raised</th><th>detail</th><th></th></tr></thead><tbody>%s</tbody></table>' % "".join(rows)
                   if rows else '<p class="ok-note" id="active-alarms">No active alarms.</p>')
    hist = "".join('<tr><td><a href="/post/%s">%s</a></td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>' % (
        esc(a["node"]), esc(a["node"]), esc(a["name"]), utc(a["raised_rx"]),
        utc(a["cleared_rx"]) if a["cleared_rx"] else '<b class="bad">active</b>', esc(a["acked_by"] or "-"))
        for a in history)
    body = ('<div class="toolbar"><h1>Alarms</h1><span class="muted">%d active</span></div>'
            '<div class="card"><h2>Active</h2>%s</div><div class="card"><h2>History</h2><table class="data">'
            '<thead><tr><th>post</th><th>alarm</th><th>raised</th><th>cleared</th><th>acknowledged by</th></tr>'
            '</thead><tbody>%s</tbody></table></div>') % (len(active), active_html, hist)
    return _shell(app, "Alarms", body, session, "alarms")


def _redacted(cfg, secret_paths):
    out = json.loads(json.dumps(cfg))
    for keys in secret_paths:
        d = out
        for k in keys[:-1]:
            d = d.get(k) if isinstance(d, dict) else None
        if isinstance(d, dict) and d.get(keys[-1]) is not None:
            d[keys[-1]] = "***"
    return out


def _value(v):
    if v is True or v is False:
        return "yes" if v else "no"
    if v is None:
        return "-"
    if isinstance(v, float):
        return "%.6g" % v
    if isinstance(v, list):
        return ", ".join(map(str, v)) or "-"
    if isinstance(v, dict):
        return json.dumps(v)
    return str(v)


def detail_text(d):
    """An alarm's or event's detail as short text: floats to 4 digits, keys in order."""
    if not isinstance(d, dict):
        return "-" if d is None else str(d)
    return " · ".join("%s %s" % (k, _value(v)) for k, v in sorted(d.items())) or "-"


def _override_text(o):
    if not isinstance(o, dict):
        return _value(o)
    until = o.get("until")
    return "%s %%%s" % (_value(o.get("level")), " until %s" % utc(until) if until else " until cleared")


def _kv(doc, keys):
    return "".join('<dt>%s</dt><dd id="kv-%s">%s</dd>' % (esc(k), esc(k), esc(_value((doc or {}).get(k))))
                   for k in keys)


def command_forms(session, node):
    if not session or session["role"] != "operator":
        return '<p class="muted" id="no-commands">Viewers can look but not command. Ask an operator.</p>'
    c = csrf_field(session)
    hidden = '<input type="hidden" name="target_kind" value="node"><input type="hidden" name="target" value="%s">' % (
        esc(node))
    return """<div class="commands">
<form class="cmd" method="post" action="/command" id="cmd-set">%s%s<input type="hidden" name="cmd" value="set">
<label>level <input type="number" name="level" min="0" max="100" value="50" required> %%</label>
<label>for <select name="duration"><option value="">until cleared</option><option value="900">15 min</option>
<option value="3600" selected>1 h</option><option value="14400">4 h</option></select></label>
<button>set</button></form>
<form class="cmd" method="post" action="/command" id="cmd-clear">%s%s<input type="hidden" name="cmd" value="clear">
<button>clear override</button></form>
<form class="cmd" method="post" action="/command" id="cmd-identify">%s%s
<input type="hidden" name="cmd" value="identify"><input type="hidden" name="seconds" value="30">
<button>identify (blink 30 s)</button></form>
<form class="cmd" method="post" action="/command" id="cmd-reboot" data-confirm="Reboot this post?">%s%s
<input type="hidden" name="cmd" value="reboot"><button class="danger">reboot</button></form>
</div><div class="reply" id="cmd-reply" hidden></div>""" % (c, hidden, c, hidden, c, hidden, c, hidden)


def group_command_form(session, groups):
    """The fleet page's one form for a whole group (or every post): set, clear or identify, with every reply."""
    if not session or session["role"] != "operator":
        return ""
    opts = "".join('<option value="%s">%s (%d)</option>' % (esc(g), esc(g), n) for g, n in groups.items())
    return """<div class="card"><h2>Command a group</h2><form class="cmd inline-cmd" method="post" action="/command"
id="cmd-group">%s<input type="hidden" name="target_kind" value="group"><label>group <select name="target">%s</select>
</label><label>command <select name="cmd"><option value="set">set level</option><option value="clear">clear override
</option><option value="identify">identify</option></select></label>
<label>level <input type="number" name="level" min="0" max="100" value="50"> %%</label>
<label>for <select name="duration"><option value="">until cleared</option><option value="3600" selected>1 h</option>
<option value="14400">4 h</option></select></label><button class="primary">send</button></form>
<div class="reply" id="cmd-reply" hidden></div></div>""" % (csrf_field(session), opts)


def recent_commands(app, node):
    rows = []
    for c in app.store.recent_commands(node, 6):
        r = app.store.command_results(c["id"]).get(node) or {}
        reply = r.get("reply") or {}
        rows.append('<tr><td>%s</td><td>%s</td><td>%s%s</td><td class="r-%s">%s</td><td class="detail">%s</td></tr>' % (
            ago(c["rx"]), esc(c["user"]), esc(c["cmd"]), "" if c["target_kind"] == "node" else
            " <span class=\"muted\">(%s %s)</span>" % (esc(c["target_kind"]), esc(c["target"])),
            esc(r.get("result", "")), esc(r.get("result", "-")), esc(reply.get("error") or "")))
    if not rows:
        return ""
    return ('<h2 class="sub">Recent commands</h2><table class="data small" id="recent-commands"><tbody>%s</tbody>'
            '</table>' % "".join(rows))


def post_page(app, session, node, q):
    p = app.fleet.get(node)
    if p is None:
        return None
    cfg = p["config"]
    site = energy.lamp_and_site(cfg)[1]
    off = site["utc_offset_min"]
    period = q.get("period", "6h")
    span = dict(PERIODS).get(period, 6 * 3600)
    t1 = app.store.latest_tele_t(node) or int(time.time())
    t0 = t1 - span
    series = app.store.tele_series(node, t0, t1, hourly=span > _RAW_UP_TO_S)
    nominal = energy.lamp_and_site(cfg)[0]
    level_chart = svg.line_chart([("level %", "level", [(t, lv) for t, lv, w, lux in series])], t0, t1, 100,
                                 "level %", off * 60, step=True, chart_id="chart-level")
    w_max = max([w for _, _, w, _ in series if w is not None] + [nominal * 1.1])
    power_chart = svg.line_chart([("power W", "power", [(t, w) for t, lv, w, lux in series])], t0, t1,
                                 round(w_max * 1.1, 0), "W", off * 60, chart_id="chart-power")
    periods = "".join('<a class="%s" href="/post/%s?period=%s">%s</a>' % (
        "active" if k == period else "", esc(node), k, k) for k, _ in PERIODS)
    state = p["state"] or {}
    tele = p["tele"] or {}
    log_rows = []
    for e in app.store.events(node, 30):
        d = e["doc"]
        what = ("alarm %s %s" % (d.get("name"), "raised" if d.get("active") else "cleared")
                if e["kind"] == "alarm" else e["kind"])
        log_rows.append((e["rx"], what, detail_text(d.get("detail", {k: v for k, v in d.items()
                                                                     if k not in ("kind", "seq", "t", "name",
                                                                                  "active")}))))
    for s in app.store.state_history(node, 30):
        log_rows.append((s["rx"], "state %s %% (%s)" % ("-" if s["level"] is None else "%g" % s["level"], s["reason"]),
                         ", ".join(s["faults"]) or ""))
    for s in app.store.status_history(node, 10):
        log_rows.append((s["rx"], "online" if s["online"] else "offline", s["reason"] or s["fw"] or ""))
    log_rows.sort(key=lambda r: -r[0])
    log = "".join('<tr><td>%s</td><td>%s</td><td class="detail">%s</td></tr>' % (utc(rx), esc(w), esc(d))
                  for rx, w, d in log_rows[:60])
    cfg_html = ('<pre class="config">%s</pre>' % esc(json.dumps(_redacted(cfg, configmod.SECRET_PATHS), indent=1,
                                                                  sort_keys=True))
                if cfg else '<p class="muted">The config has not arrived yet.</p>')
    body = """<div class="toolbar"><h1>Post %s</h1><span id="post-look" data-id="%s">%s</span>
<span class="muted">%s</span></div>
<div class="grid2"><div class="card"><h2>Now</h2><dl class="kv" id="post-state">%s</dl></div>
<div class="card"><h2>Commands</h2>%s%s</div></div>
<div class="card"><div class="toolbar"><h2>Telemetry</h2><div class="periods">%s</div>
<span class="muted">node time %s – %s (local)</span></div>%s%s</div>
<div class="grid2"><div class="card"><h2>Log</h2><table class="data small"><thead><tr><th>received</th><th>what</th>
<th>detail</th></tr></thead><tbody>%s</tbody></table></div>
<div class="card"><h2>Config <span class="muted">(secrets hidden)</span></h2>%s</div></div>""" % (
        esc(node), esc(node), look_chip(p["look"]), esc(", ".join(p["groups"])),
        _kv(dict(state, online=p["online"], override=_override_text(state.get("override")), lux=tele.get("lux"),
                 w=tele.get("w"), v=tele.get("v"),
                 rssi=tele.get("rssi"), lat=p["lat"], lon=p["lon"]),
            ("online", "level", "reason", "mode", "override", "faults", "time_valid", "lux", "w", "v", "energy_wh",
             "burn_h", "rssi", "fw", "config", "lat", "lon")),
        command_forms(session, node), recent_commands(app, node), periods, local(t0, off), local(t1, off),
        level_chart, power_chart,
        log or '<tr><td class="muted">nothing yet</td></tr>', cfg_html)
    return _shell(app, "Post " + node, body, session, None)


def energy_page(app, session, q):
    groups_of = {}
    for s in app.fleet.snapshot():
        groups_of[s["id"]] = s["groups"]
    table = energy.by_group(app.store.energy_by_month(), groups_of)
    months = sorted({m for g in table.values() for m in g})
    totals = {m: [0.0, 0.0] for m in months}
    for node, month, wh, base in app.store.energy_by_month():
        totals[month][0] += wh / 1000.0
        totals[month][1] += base / 1000.0
    chart = svg.bar_chart([(m, totals[m][0], totals[m][1]) for m in months]) if months else ""
    head = "".join("<th>%s</th>" % esc(m) for m in months)
    rows = []
    for g, per in sorted(table.items()):
        cells = "".join('<td>%s</td>' % ('<b>%.2f</b> <span class="muted">/ %.2f</span>%s' % (
            per[m][0], per[m][1], ' <span class="saving">−%.0f %%</span>' % (100 * (1 - per[m][0] / per[m][1]))
            if per[m][1] > 0 else "") if m in per else "-") for m in months)
        rows.append("<tr><td>%s</td>%s</tr>" % (esc(g), cells))
    body = ('<div class="toolbar"><h1>Energy</h1><span class="muted">metered kWh per group and month (the posts\' '
            'own counters) / all night at full power over the same hours</span></div>'
            '<div class="card"><h2>Whole fleet</h2>%s<div class="legend"><span class="legend-item"><i class="sq '
            'measured"></i>metered</span><span class="legend-item"><i class="sq baseline"></i>all night full</span>'
            '</div></div><div class="card"><h2>Per group</h2><table class="data" id="energy-table"><thead><tr>'
            '<th>group</th>%s</tr></thead><tbody>%s</tbody></table></div>') % (
        chart or '<p class="muted">No metered telemetry yet.</p>', head, "".join(rows))
    return _shell(app, "Energy", body, session, "energy")


def login_page(error=None, next_url="/map"):
    body = """<div class="login card"><h1>Log in</h1>%s<form method="post" action="/login">
<input type="hidden" name="next" value="%s">
<label>user <input name="user" autocomplete="username" required autofocus></label>
<label>password <input type="password" name="password" autocomplete="current-password" required></label>
<button>log in</button></form></div>""" % ('<p class="error">%s</p>' % esc(error) if error else "", esc(next_url))
    return page("Log in", body)
