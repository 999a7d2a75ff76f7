"""The programs page: edit the dimming programs and the calendar in a form, check them with the node's own
schemas, preview a night, and push them to a group with per-node progress.

The form is read into the same document the `program` command carries ({"programs", "calendar"}); it is checked
by firmware/program.py's schemas, by the command schema (firmware/commands.py, through tools/fleet.checked) and,
merged into each member's known config, by firmware/config.py (tools/fleet.validate_patch) — the node would refuse
anything that fails here, so nothing that fails is sent. The preview is tools/energy_report.py's night: the real
control code in the simulator's world, one night at the group's site.
"""

import argparse
import json
import os
import tempfile
import time

import energy_report  # tools/energy_report.py
import fleet  # tools/fleet.py
from console import energy, svg
from console.html import csrf_field, esc, page
from firmware import config as configmod
from firmware import program as programmod
from firmware.schema import Invalid

STEP_ROWS_EXTRA = 2  # empty step rows offered under each program
CAL_ROWS_EXTRA = 2
AT_CHOICES = ("sunset", "civil_dusk", "civil_dawn", "sunrise")


def _base_config(app, group):
    """The config programs are edited against: the first group member's that the console knows, else defaults."""
    online, offline = app.fleet.members(group or "all")
    for n in online + offline:
        p = app.fleet.get(n)
        if p and p["config"]:
            return n, p["config"]
    return None, configmod.defaults()


def _ints(text, path):
    out = []
    for part in text.replace(" ", "").split(","):
        if part:
            try:
                out.append(int(part))
            except ValueError:
                raise Invalid(path, "must be whole numbers separated by commas")
    return out or None


def read_form(form):
    """The posted form → {"programs": {...}, "calendar": [...]}, or Invalid naming the field."""
    programs = {}
    i = 0
    while "p%d_name" % i in form:
        name = form.get("p%d_name" % i, "").strip()
        steps = []
        j = 0
        while "p%d_s%d_at" % (i, j) in form:
            at = form.get("p%d_s%d_at" % (i, j), "").strip()
            level = form.get("p%d_s%d_level" % (i, j), "").strip()
            offset = form.get("p%d_s%d_offset" % (i, j), "").strip() or "0"
            if at or level:
                path = "programs.%s[%d]" % (name or "?", len(steps))
                try:
                    steps.append({"at": at, "offset_min": int(offset), "level": int(level)})
                except ValueError:
                    raise Invalid(path, "offset and level must be whole numbers")
            j += 1
        if name:
            if name in programs:
                raise Invalid("programs." + name, "named twice")
            programs[name] = steps
        elif steps:
            raise Invalid("programs[%d]" % i, "a program with steps needs a name")
        i += 1
    calendar = []
    k = 0
    while "c%d_program" % k in form:
        prog = form.get("c%d_program" % k, "").strip()
        if prog:
            path = "calendar[%d]" % len(calendar)
            dates = [d for d in form.get("c%d_dates" % k, "").replace(" ", "").split(",") if d] or None
            try:
                priority = int(form.get("c%d_priority" % k, "0").strip() or "0")
            except ValueError:
                raise Invalid(path + ".priority", "must be a whole number")
            calendar.append({"program": prog, "priority": priority,
                             "weekdays": _ints(form.get("c%d_weekdays" % k, ""), path + ".weekdays"),
                             "dates": dates, "from": form.get("c%d_from" % k, "").strip() or None,
                             "to": form.get("c%d_to" % k, "").strip() or None})
        k += 1
    return {"programs": programs, "calendar": calendar}


def validate(app, doc, group):
    """The document checked by the node's own schemas, against every member's config. Normalised doc, or Invalid /
    ValueError with the reason."""
    programs = programmod.PROGRAMS_SCHEMA.check(doc["programs"], "programs")
    calendar = programmod.CALENDAR_SCHEMA.check(doc["calendar"], "calendar")
    try:
        fleet.checked("program", {"programs": programs, "calendar": calendar})
        online, offline = app.fleet.members(group)
        bases = {n: (app.fleet.get(n) or {}).get("config") for n in online + offline} or {None: None}
        fleet.validate_patch({"programs": programs, "calendar": calendar}, bases)
    except fleet.UsageError as e:
        raise ValueError(str(e))
    return {"programs": programs, "calendar": calendar}


def preview(base_cfg, doc, night):
    """(svg, figures) of one night under the programs at the base config's site (tools/energy_report.py)."""
    cfg = configmod.validate(configmod.merge(fleet._unredact(base_cfg), doc))
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(cfg, f)
    try:
        a = argparse.Namespace(days=1, start=night, place=None, lat=None, lon=None, utc_offset_min=None,
                               config=f.name, mode=None, watts=None, step_s=60, night=night)
        summary, rec, cfg, _ = energy_report.run(a)
    finally:
        os.unlink(f.name)
    site = cfg["site"]
    off = site["utc_offset_min"] * 60
    t2u = energy.T2K_OFFSET
    sset, srise, cdusk, cdawn = energy_report.sun_marks(site, rec["night"])
    lo = (sset + t2u - 5400) if sset else rec["t"][0] + t2u
    hi = (srise + t2u + 5400) if srise else rec["t"][-1] + t2u
    pts = [(t + t2u, lv) for t, lv in zip(rec["t"], rec["level"]) if lo <= t + t2u <= hi]
    marks = [(m + t2u, label) for m, label in ((sset, "sunset"), (srise, "sunrise")) if m is not None]
    chart = svg.line_chart([("program level %", "level", pts), ("all night full", "baseline", [(lo, 100), (hi, 100)])],
                           lo, hi, 110, "level %", off, step=True, marks=marks, chart_id="night-chart")
    wh = sum(w * dt for w, dt in zip(rec["watts"], rec["dt"])) / 3600.0
    full = (srise - sset) / 3600.0 * summary["nominal_w"] if sset and srise else 0.0
    return chart, {"wh": wh, "full_wh": full, "nominal_w": summary["nominal_w"]}


def _steps_rows(i, steps):
    rows = []
    for j, s in enumerate(list(steps) + [None] * STEP_ROWS_EXTRA):
        s = s or {}
        rows.append('<tr><td><input name="p%d_s%d_at" list="at-choices" value="%s" placeholder="sunset, 23:00" '
                    'size="11"></td><td><input name="p%d_s%d_offset" type="number" min="-180" max="180" value="%s" '
                    'class="num"></td><td><input name="p%d_s%d_level" type="number" min="0" max="100" value="%s" '
                    'class="num"></td></tr>' % (i, j, esc(s.get("at", "")), i, j, esc(s.get("offset_min", "")), i, j,
                                                esc(s.get("level", ""))))
    return "".join(rows)


def _calendar_rows(calendar):
    rows = []
    for k, e in enumerate(list(calendar) + [None] * CAL_ROWS_EXTRA):
        e = e or {}
        rows.append('<tr><td><input name="c%d_program" value="%s" size="10"></td><td><input name="c%d_dates" '
                    'value="%s" placeholder="08-17, 2026-12-25"></td><td><input name="c%d_weekdays" value="%s" '
                    'placeholder="0-6, 0 = Monday" size="10"></td><td><input name="c%d_from" value="%s" '
                    'placeholder="YYYY-MM-DD" size="10"></td><td><input name="c%d_to" value="%s" placeholder='
                    '"YYYY-MM-DD" size="10"></td><td><input name="c%d_priority" type="number" value="%s" class="num">'
                    '</td></tr>' % (k, esc(e.get("program", "")), k, esc(", ".join(e.get("dates") or [])), k,
                                    esc(", ".join(str(d) for d in e.get("weekdays") or [])), k,
                                    esc(e.get("from") or ""), k, esc(e.get("to") or ""), k,
                                    esc(e.get("priority", "") if e else "")))
    return "".join(rows)


def programs_page(app, session, q, doc=None, message=None, error=None, chart=None, push=None):
    groups = app.fleet.groups()
    group = q.get("group") or (max(sorted(groups), key=lambda g: groups[g]) if groups else "all")
    source, base = _base_config(app, group)
    if doc is None:
        doc = {"programs": base.get("programs") or {}, "calendar": base.get("calendar") or []}
    night = q.get("night") or time.strftime("%Y-%m-%d", time.gmtime(time.time() + 7 * 3600))
    progs = list(doc["programs"].items()) + [("", [])]
    blocks = "".join('<div class="program"><label>program <input name="p%d_name" value="%s" size="12" '
                     'placeholder="new program"></label><table class="steps"><thead><tr><th>at</th><th>offset min'
                     '</th><th>level %%</th></tr></thead><tbody>%s</tbody></table></div>' % (
                         i, esc(name), _steps_rows(i, steps)) for i, (name, steps) in enumerate(progs))
    group_opts = "".join('<option value="%s"%s>%s (%d)</option>' % (esc(g), " selected" if g == group else "", esc(g),
                                                                      n) for g, n in groups.items())
    can = session and session["role"] == "operator"
    notes = ""
    if error:
        notes += '<p class="error" id="program-error">%s</p>' % esc(error)
    if message:
        notes += '<p class="ok-note" id="program-ok">%s</p>' % esc(message)
    body = """<div class="toolbar"><h1>Programs</h1><form method="get" action="/programs" class="inline">
<label>group <select name="group" onchange="this.form.submit()">%s</select></label></form>
<span class="muted">editing from %s</span></div>%s
<form method="post" action="/programs" id="program-form">%s<input type="hidden" name="group" value="%s">
<datalist id="at-choices">%s</datalist>
<div class="card"><h2>Programs <span class="muted">(steps at sunset/sunrise/civil dusk/dawn or local HH:MM, ±
offset; up to 10 per program; "default" must exist)</span></h2><div class="programs">%s</div></div>
<div class="card"><h2>Calendar <span class="muted">(which program rules a night; higher priority wins)</span></h2>
<table class="data cal"><thead><tr><th>program</th><th>dates</th><th>weekdays</th><th>from</th><th>to</th>
<th>priority</th></tr></thead><tbody>%s</tbody></table></div>
<div class="card actions"><label>night <input type="date" name="night" value="%s"></label>
<button name="action" value="preview">check and preview the night</button>
%s</div></form>%s%s""" % (
        group_opts, esc(source or "the defaults"), notes, csrf_field(session), esc(group),
        "".join('<option value="%s">' % a for a in AT_CHOICES), blocks, _calendar_rows(doc["calendar"]), esc(night),
        '<button name="action" value="push" class="primary" data-confirm="Push these programs to group %s?">'
        'push to group %s</button>' % (esc(group), esc(group)) if can else
        '<span class="muted">viewers cannot push programs</span>',
        '<div class="card"><h2>Night preview</h2>%s</div>' % chart if chart else "",
        push or "")
    return page("Programs", body, session, "programs", alarms=len(app.store.open_alarms()))


def progress_panel(cid, group, n):
    return ('<div class="card" id="push-progress" data-command="%s"><h2>Push to %s</h2><p class="muted">%d member(s) '
            'expected</p><div class="progress"><div class="bar-fill" style="width:0"></div></div>'
            '<table class="data" id="push-results"><tbody></tbody></table></div>') % (esc(cid), esc(group), n)


def handle_post(app, session, form):
    """The form posted: check, preview and/or push. Returns the page."""
    group = form.get("group") or "all"
    q = {"group": group, "night": form.get("night")}
    try:
        doc = read_form(form)
    except Invalid as e:
        return programs_page(app, session, q, error=str(e))
    try:
        doc = validate(app, doc, group)
    except (Invalid, ValueError) as e:
        return programs_page(app, session, q, doc=doc, error=str(e))
    night = form.get("night") or time.strftime("%Y-%m-%d")
    try:
        chart, fig = preview(_base_config(app, group)[1], doc, night)
    except (Invalid, ValueError) as e:
        return programs_page(app, session, q, doc=doc, error="preview: %s" % e)
    saved = (1 - fig["wh"] / fig["full_wh"]) * 100 if fig["full_wh"] else 0.0
    msg = "Valid for every member of %s. Night of %s: %.0f Wh vs %.0f Wh all night at %.0f W (%.0f %% saved)." % (
        group, night, fig["wh"], fig["full_wh"], fig["nominal_w"], saved)
    push = None
    if form.get("action") == "push":
        if session["role"] != "operator":
            return programs_page(app, session, q, doc=doc, error="viewers cannot push programs")
        target = ("all", None) if group == "all" else ("group", group)
        members = app.fleet.members(group)[0]
        t = app.commander.send(session["user"], target, "program", doc, timeout=15,
                               on_done=lambda t: app.ingest.refresh_config(t.results))
        push = progress_panel(t.id, group, len(members))
        msg += " Sent to %d online member(s)." % len(members)
    return programs_page(app, session, q, doc=doc, message=msg, chart=chart, push=push)
