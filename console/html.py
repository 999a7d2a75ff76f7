"""The page shell (header, navigation, who is logged in) and small HTML helpers shared by every page.

Every value that reaches HTML goes through `esc`; every form that changes something carries the session's CSRF
token through `csrf_field`.
"""

import time
from html import escape

NAV = (("map", "/map", "Map"), ("fleet", "/fleet", "Fleet"), ("alarms", "/alarms", "Alarms"),
       ("programs", "/programs", "Programs"), ("energy", "/energy", "Energy"))


def esc(v):
    return "" if v is None else escape(str(v), quote=True)


def csrf_field(session):
    return '<input type="hidden" name="csrf" value="%s">' % esc(session["csrf"]) if session else ""


def page(title, body, session=None, active=None, counts=None, alarms=None):
    nav = "".join('<a href="%s"%s>%s%s</a>' % (
        href, ' class="active"' if key == active else "", label,
        ' <span class="badge" id="alarm-badge">%d</span>' % alarms if key == "alarms" and alarms else "")
        for key, href, label in NAV)
    who = ""
    if session:
        who = ('<form class="who" method="post" action="/logout">%s<span>%s <em>%s</em></span>'
               '<button class="link">log out</button></form>' % (csrf_field(session), esc(session["user"]),
                                                                  esc(session["role"])))
    return """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>%s · Streetlight console</title><link rel="stylesheet" href="/static/console.css">
<link rel="icon" href="data:,"></head>
<body data-page="%s" data-role="%s"><header>
<a class="brand" href="/map"><span class="bulb"></span>Streetlight console</a>
<nav>%s</nav><span class="live" id="live" title="live updates">●</span>%s</header>
<main>%s</main><script src="/static/console.js"></script></body></html>""" % (
        esc(title), esc(active or ""), esc(session["role"] if session else ""), nav, who, body)


def ago(t, now=None):
    """'42 s', '5 min', '3 h 10 min', '2 d' since t (console time)."""
    if t is None:
        return "-"
    s = max(0, int((time.time() if now is None else now) - t))
    if s < 60:
        return "%d s" % s
    if s < 3600:
        return "%d min" % (s // 60)
    if s < 86400:
        return "%d h %d min" % (s // 3600, s % 3600 // 60)
    return "%d d %d h" % (s // 86400, s % 86400 // 3600)


def utc(t):
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + "Z"


def local(t, offset_min):
    """A node time shown in the post's local time."""
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(t + offset_min * 60))


def look_chip(look):
    return '<span class="chip %s">%s</span>' % (esc(look), esc(look))
