"""The console process: connect to the broker (tools/fleet.py's settings and Operator), open the history database,
start the ingest and the web server. Without a broker, it starts the demo's: a local broker and a small virtual city
(tools/fleet_sim.py), so `make console` shows living posts at once.

    python -m console [--broker mqtt://host:1883 ...fleet.py's flags...] [--db FILE|postgresql://...]
                      [--http 127.0.0.1:8080] [--raw-days 7] [--hourly-days 730] [--log-days 90]
                      [--demo-nodes 12] [--demo-speed 60]
    python -m console adduser NAME --role operator|viewer [--db ...]   (password read from stdin or prompted)
"""

import argparse
import getpass
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time

import fleet  # tools/fleet.py (on sys.path via console/__init__.py): broker settings, TLS, credentials, signing
from console.auth import Auth
from console.commander import Commander
from console.ingest import Ingest
from console.live import Fleet
from console.store import Store
from console.web import make_server


class App:
    """Everything one console process holds; the web handlers read it."""

    def __init__(self, op, store, retention=None, command_timeout=10.0):
        self.op = op
        self.store = store
        self.fleet = Fleet()
        self.auth = Auth(store)
        self.stopping = threading.Event()
        self.commander = Commander(op, self.fleet, store, command_timeout)
        self.ingest = Ingest(op, self.fleet, store, self.commander, store.nodes(), retention)
        self.server = None
        self._thread = None

    def start(self, host="127.0.0.1", port=8080):
        self.ingest.start()
        self.server = make_server(self, host, port)
        self._thread = threading.Thread(target=self.server.serve_forever, name="console web", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self):
        h, p = self.server.server_address[:2]
        return "http://%s:%d" % (h, p)

    def close(self):
        self.stopping.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        self.ingest.stop()
        self.commander.close()


def parse_http(text):
    host, _, port = text.rpartition(":")
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        raise fleet.UsageError("--http wants HOST:PORT, not %r" % text)


def build_parser():
    ap = argparse.ArgumentParser(prog="console", description="The lighting engineer's console: a web app over the "
                                                              "broker, with history in a database.")
    for flag, what in (("--broker", "mqtt://host:port or mqtts://host:port (FLEET_BROKER); none: start the demo"),
                       ("--user", "MQTT user (FLEET_USER)"), ("--password", "MQTT password (FLEET_PASSWORD)"),
                       ("--ca", "CA certificate for mqtts:// (FLEET_CA)"),
                       ("--key", "HMAC key: sign every command (FLEET_KEY)"),
                       ("--group-key", "HMAC key for group/broadcast commands (FLEET_GROUP_KEY)"),
                       ("--prefix", "topic prefix, default city/lights (FLEET_PREFIX)"),
                       ("--config", "fleet settings file (default ~/.config/streetlight/fleet.json)")):
        ap.add_argument(flag, help=what)
    ap.add_argument("--db", default="console.db", help="SQLite file (default console.db) or postgresql://... URL")
    ap.add_argument("--http", default="127.0.0.1:8080", help="where the web app listens (default 127.0.0.1:8080)")
    ap.add_argument("--raw-days", type=float, default=7.0, help="keep raw telemetry this long (default 7)")
    ap.add_argument("--hourly-days", type=float, default=400.0, help="keep hourly aggregates this long (default 400)")
    ap.add_argument("--log-days", type=float, default=90.0, help="keep status/state/event logs this long (default 90)")
    ap.add_argument("--demo-nodes", type=int, default=12, help="virtual posts when the demo runs (default 12)")
    ap.add_argument("--demo-speed", type=float, default=60.0, help="the demo world's clock speed (default 60x)")
    ap.add_argument("--seconds", type=float, default=0, help="stop after this long (default: until Ctrl-C)")
    ap.add_argument("command", nargs="?", choices=("serve", "adduser"), default="serve")
    ap.add_argument("name", nargs="?", help="adduser: the user's name")
    ap.add_argument("--role", choices=("operator", "viewer"), default="viewer", help="adduser: the user's role")
    return ap


def adduser(args, stdin=None, out=None):
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    if not args.name:
        raise fleet.UsageError("adduser needs a NAME")
    password = getpass.getpass("password for %s: " % args.name) if stdin.isatty() else stdin.readline().rstrip("\n")
    store = Store.open(args.db)
    try:
        Auth(store).add_user(args.name, password, args.role)
    except ValueError as e:
        raise fleet.UsageError(str(e))
    finally:
        store.close()
    out.write("user %s (%s) saved in %s\n" % (args.name, args.role, args.db))
    return 0


def first_user(store, out):
    """A console nobody can log into is useless: on first run, make an operator and say its password once."""
    if store.user_count():
        out.write("log in with an existing user (a forgotten password: python -m console adduser NAME --role "
                  "operator --db ... sets a new one)\n")
        return
    password = secrets.token_urlsafe(9)
    Auth(store).add_user("admin", password, "operator")
    out.write("first run: created user 'admin' (operator), password %s\n"
              "  add more with: python -m console adduser NAME --role operator|viewer --db ...\n" % password)


class Demo:
    """The demo's broker and virtual city, for a console started without a broker."""

    def __init__(self, nodes, speed):
        from broker import Broker
        from fleet_sim import Fleet as SimFleet

        self.dir = tempfile.mkdtemp(prefix="console-demo-")
        self.broker = Broker("auto").start()
        self.sim = SimFleet(self.broker.host, self.broker.port, self.dir, speed=speed, faulty=max(1, nodes // 6))
        self.sim.grow(nodes)
        self.url = "mqtt://%s:%d" % (self.broker.host, self.broker.port)

    def close(self):
        self.sim.stop()
        self.broker.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def broker_given(args):
    """Whether a broker was named (flag, environment or fleet settings file); if not, the demo starts one."""
    if args.broker or os.environ.get("FLEET_BROKER"):
        return True
    try:
        with open(args.config or os.path.expanduser(fleet.DEFAULT_CONFIG)) as f:
            return bool(json.load(f).get("broker"))
    except (OSError, ValueError, AttributeError):
        return False


def _stop_on_sigterm():
    # A console stopped by its service manager must stop its demo nodes and close the database: SIGTERM unwinds
    # like Ctrl-C (the finally blocks run) instead of ending the process where it stands.
    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)


def serve(args, out):
    settings = fleet.load_settings(args)
    host, port = parse_http(args.http)
    if threading.current_thread() is threading.main_thread():
        _stop_on_sigterm()
    demo = store = app = None
    try:
        if not broker_given(args):
            demo = Demo(args.demo_nodes, args.demo_speed)
            settings["broker"] = demo.url
            out.write("no broker given: started the demo's (%s) with %d virtual posts at %gx\n" % (
                demo.url, args.demo_nodes, args.demo_speed))
        store = Store.open(args.db)
        first_user(store, out)
        op = fleet.connect(settings, client_id="console-" + secrets.token_hex(4))
        app = App(op, store, {"raw_days": args.raw_days, "hourly_days": args.hourly_days,
                              "log_days": args.log_days})
        try:
            app.start(host, port)
        except OSError as e:
            raise fleet.UsageError("--http %s:%d: cannot listen there (%s)" % (host, port, e.strerror or e))
        out.write("console on %s (broker %s, history in %s)\n" % (app.url, settings["broker"],
                                                                  args.db.split("@")[-1]))
        out.flush()
        end = time.time() + args.seconds if args.seconds else None
        while end is None or time.time() < end:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        if app is not None:
            app.close()
            app.op.close()
        if store is not None:
            store.close()
        if demo is not None:
            demo.close()
    return 0


def main(argv=None, out=None, stdin=None):
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    try:
        if args.command == "adduser":
            return adduser(args, stdin=stdin, out=out)
        return serve(args, out)
    except fleet.UsageError as e:
        sys.stderr.write("console: %s\n" % e)
        return fleet.EXIT_USAGE
    except fleet.Unreachable as e:
        sys.stderr.write("console: %s\n" % e)
        return fleet.EXIT_UNREACHABLE
    except ValueError as e:  # --db: a bad URL or a missing driver
        sys.stderr.write("console: %s\n" % e)
        return fleet.EXIT_USAGE
