"""The console's HTTP side: stdlib ThreadingHTTPServer, a route table, sessions, CSRF, the live event stream.

Rules every route follows: nothing but /login and /static is served without a session; a POST that changes
anything needs the session's CSRF token (else 403, nothing done); a command needs the operator role (else 403).
The event stream (/events, Server-Sent Events) sends the posts that changed, and alarm/command news, as they
happen; each open page holds one such stream on its own thread.
"""

import json
import os
import re
import sys
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from console import pages, programs
from console.auth import csrf_ok

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".png": "image/png"}
_MAX_FORM = 256 * 1024
SSE_HEARTBEAT_S = 15.0
COMMANDS = ("set", "clear", "identify", "reboot")


class Refused(Exception):
    def __init__(self, status, reason):
        Exception.__init__(self, reason)
        self.status = status
        self.reason = reason


def command_fields(form):
    """A command form → (target, cmd, fields), or ValueError. The schema check itself is the Commander's."""
    cmd = form.get("cmd")
    if cmd not in COMMANDS:
        raise ValueError("unknown command %r" % cmd)
    kind, name = form.get("target_kind"), form.get("target", "")
    if kind == "node":
        target = ("node", [n for n in name.split(",") if n])
    elif kind == "group" and name != "all":
        target = ("group", name)
    elif kind in ("all", "group"):  # the fleet page offers "all" beside the groups: the broadcast topic
        target = ("all", None)
    else:
        raise ValueError("target_kind must be node, group or all")
    fields = {}
    try:
        if cmd == "set":
            fields["level"] = int(form.get("level", ""))
            fields["duration_s"] = int(form["duration"]) if form.get("duration") else None
        elif cmd == "identify":
            fields["seconds"] = int(form.get("seconds") or 30)
        elif cmd == "reboot":
            fields["safe"] = form.get("safe") == "1"
    except ValueError:
        raise ValueError("level, duration and seconds are whole numbers")
    return target, cmd, fields


class Handler(BaseHTTPRequestHandler):
    server_version = "streetlight-console"
    protocol_version = "HTTP/1.1"
    app = None  # set by make_server

    def log_message(self, fmt, *args):
        pass  # the console's own log says what matters; a line per request would drown it

    # --- plumbing ---

    def _session(self):
        cookie = self.headers.get("Cookie") or ""
        for part in cookie.split(";"):
            k, _, v = part.strip().partition("=")
            if k == "session":
                return v, self.app.auth.session(v)
        return None, None

    def _send(self, status, body, ctype="text/html; charset=utf-8", headers=()):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                         "img-src 'self' data:")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _json(self, status, doc):
        self._send(status, json.dumps(doc), "application/json")

    def _redirect(self, where, headers=()):
        self._send(303, "", headers=(("Location", where),) + tuple(headers))

    def _form(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > _MAX_FORM:
            raise Refused(413, "form too large")
        raw = self.rfile.read(n).decode("utf-8", "replace")
        return {k: v[-1] for k, v in urllib.parse.parse_qs(raw, keep_blank_values=True).items()}

    def _refuse(self, status, reason):
        if self.headers.get("X-Console-Fetch"):
            self._json(status, {"error": reason})
        else:
            self._send(status, "<!doctype html><title>%d</title><p>%s</p><p><a href=\"/map\">back</a></p>" % (
                status, reason))

    # --- dispatch ---

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(u.query).items()}
        path = u.path
        try:
            if path.startswith("/static/"):
                return self._static(path[len("/static/"):])
            if path == "/login":
                return self._send(200, pages.login_page(next_url=q.get("next", "/map")))
            token, session = self._session()
            if session is None:
                if path.startswith("/api/") or path == "/events":
                    return self._json(401, {"error": "log in first"})
                return self._redirect("/login?next=" + urllib.parse.quote(self.path))
            app = self.app
            if path in ("/", ""):
                return self._redirect("/map")
            if path == "/events":
                return self._events(int(q.get("seq", "0") or 0))
            simple = {"/map": pages.map_page, "/fleet": pages.fleet_page, "/alarms": pages.alarms_page,
                      "/energy": pages.energy_page, "/programs": programs.programs_page}
            if path in simple:
                return self._send(200, simple[path](app, session, q))
            m = re.match(r"^/post/([a-z0-9_-]{1,32})$", path)
            if m:
                body = pages.post_page(app, session, m.group(1), q)
                return self._send(200, body) if body else self._refuse(404, "no such post")
            if path == "/api/fleet":
                return self._json(200, {"seq": app.fleet.seq, "posts": app.fleet.snapshot(),
                                        "counts": app.fleet.counts()})
            m = re.match(r"^/api/command/([A-Za-z0-9_.:-]{1,40})$", path)
            if m:
                view = app.commander.get(m.group(1))
                return self._json(200, view) if view else self._json(404, {"error": "no such command"})
            if path == "/api/stats":
                return self._json(200, {"ingest": app.ingest.stats, "db": app.store.counts()})
            return self._refuse(404, "no such page")
        except (BrokenPipeError, ConnectionResetError):
            return None
        except Exception as e:  # the page's own fault (a database error...): say so, keep serving the others
            return self._internal_error(e)

    do_HEAD = do_GET

    def _internal_error(self, e):
        sys.stderr.write("console: %s %s failed:\n%s" % (self.command, self.path, traceback.format_exc()))
        try:
            self._refuse(500, "internal error (%s); the console's log has the details" % type(e).__name__)
        except OSError:
            pass

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        try:
            form = self._form()
            if path == "/login":
                return self._login(form)
            token, session = self._session()
            if session is None:
                raise Refused(401, "log in first")
            if not csrf_ok(session, form.get("csrf")):
                raise Refused(403, "refused: the form's CSRF token is missing or wrong (reload the page)")
            if path == "/logout":
                self.app.auth.logout(token)
                return self._redirect("/login", (("Set-Cookie", "session=; Path=/; Max-Age=0"),))
            if path == "/programs":
                if form.get("action") == "push" and session["role"] != "operator":
                    raise Refused(403, "refused: viewers may not push programs")
                return self._send(200, programs.handle_post(self.app, session, form))
            if session["role"] != "operator":
                raise Refused(403, "refused: viewers may not command posts")
            if path == "/command":
                return self._command(session, form)
            m = re.match(r"^/alarms/(\d+)/ack$", path)
            if m:
                self.app.store.ack_alarm(int(m.group(1)), session["user"], time.time())
                with self.app.fleet.cond:
                    self.app.fleet.changed("!alarms")
                return self._redirect("/alarms")
            raise Refused(404, "no such action")
        except Refused as e:
            return self._refuse(e.status, e.reason)
        except (BrokenPipeError, ConnectionResetError):
            return None
        except Exception as e:  # as in do_GET
            return self._internal_error(e)

    # --- routes ---

    def _login(self, form):
        name = form.get("user", "")
        got = self.app.auth.login(name, form.get("password", ""))
        if got is None:
            wait = self.app.auth.locked(name)
            why = "too many wrong passwords: try again in %d s" % wait if wait else "wrong user or password"
            return self._send(429 if wait else 401, pages.login_page(why, form.get("next", "/map")))
        token, _ = got
        nxt = form.get("next") or "/map"
        if not nxt.startswith("/") or nxt.startswith("//"):
            nxt = "/map"  # only local redirects: a login link must not send the user elsewhere
        # Behind a TLS-terminating proxy the cookie is marked Secure (never sent over plain HTTP).
        secure = "; Secure" if self.headers.get("X-Forwarded-Proto") == "https" else ""
        return self._redirect(nxt, (("Set-Cookie", "session=%s; Path=/; HttpOnly; SameSite=Strict%s" % (
            token, secure)),))

    def _command(self, session, form):
        try:
            target, cmd, fields = command_fields(form)
            t = self.app.commander.send(session["user"], target, cmd, fields)
        except ValueError as e:
            raise Refused(400, str(e))
        if self.headers.get("X-Console-Fetch"):
            return self._json(200, t.view())
        back = "/post/%s" % target[1][0] if target[0] == "node" and target[1] else "/fleet"
        return self._send(200, '<!doctype html><link rel="stylesheet" href="/static/console.css"><main><div '
                          'class="card"><p>Sent %s (command %s). <a href="%s">Back</a> — the reply shows there.</p>'
                          '</div></main>' % (cmd, t.id, back))

    def _static(self, name):
        if not re.match(r"^[a-z0-9_.-]+$", name):
            return self._refuse(404, "no such file")
        p = os.path.join(STATIC, name)
        if not os.path.isfile(p):
            return self._refuse(404, "no such file")
        with open(p, "rb") as f:
            data = f.read()
        self._send(200, data, _TYPES.get(os.path.splitext(name)[1], "application/octet-stream"))

    def _events(self, seq):
        """Server-Sent Events: `posts` (changed posts' summaries), `alarms`, `commands` — until the page closes."""
        app = self.app
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if self.command == "HEAD":
            return
        if seq <= 0 or seq > app.fleet.seq:
            seq = app.fleet.seq
        self.wfile.write(b"event: hello\ndata: %d\n\n" % seq)
        self.wfile.flush()
        last_beat = time.time()
        while not app.stopping.is_set():
            seq, what = app.fleet.since(seq, 1.0)
            chunks = []
            if what is None:
                chunks.append(("posts", app.fleet.snapshot()))
                chunks.append(("alarms", len(app.store.open_alarms())))
            elif what:
                ids = [w for w in what if not w.startswith("!")]
                if ids:
                    chunks.append(("posts", app.fleet.summaries(ids)))
                if "!alarms" in what:
                    chunks.append(("alarms", len(app.store.open_alarms())))
                if "!commands" in what:
                    chunks.append(("commands", seq))
            if chunks:
                chunks.append(("counts", app.fleet.counts()))
            elif time.time() - last_beat >= SSE_HEARTBEAT_S:
                chunks.append(("beat", seq))
            if not chunks:
                continue
            try:
                for name, doc in chunks:
                    self.wfile.write(("event: %s\nid: %d\ndata: %s\n\n" % (name, seq, json.dumps(doc))).encode())
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, OSError):
                return
            last_beat = time.time()
            time.sleep(0.25)  # at most four updates a second per page, however busy the fleet


def make_server(app, host, port):
    handler = type("ConsoleHandler", (Handler,), {"app": app})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
