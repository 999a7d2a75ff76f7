"""The operator's fleet CLI: list, watch, command and collect from lamp posts over MQTT (one entry point, subcommands).

    python tools/fleet.py [--broker mqtt://host:1883] [--json] COMMAND ...

    list                         table of every node seen (retained status/state): online, level, faults, energy...
    watch [--table]              live event stream (or a redrawn table), bounded by --seconds
    set LEVEL [--for 2h]         override the level on --node ID | --group G | --all
    clear                        end the override; the program decides again
    get state|config|log|counters
    program push FILE            replace programs (+calendar); validated against each target's config first
    config push FILE             partial config; merged into each target's current config and validated first
    reboot [--safe]              restart the node(s)
    time-sync                    send the host's UTC
    identify [--seconds N]       blink the lamp
    alarms                       active faults across the fleet and alarm events seen while listening
    clear-retained [--dry-run]   delete retained messages left on command/update topics (`list` warns of them)
    collect --out FILE           long-running collector: tele/event/state/status as JSON lines, shared subscription

Exit status: 0 every node answered ok; 1 some node errored, timed out or was offline; 2 usage or validation error
(nothing was sent); 3 broker unreachable. Settings come from flags, then the environment (FLEET_BROKER, FLEET_USER,
FLEET_PASSWORD, FLEET_CA, FLEET_CERT, FLEET_CERT_KEY, FLEET_KEY, FLEET_GROUP_KEY, FLEET_PREFIX), then the config
file (--config, default ~/.config/streetlight/fleet.json: {"broker", "user", "password", "ca", "cert", "cert_key",
"key", "group_key", "prefix"}). tools/ota.py takes the same settings (add_settings_args, load_settings, connect).

Commands are checked locally with the node's own schemas (firmware/commands.py COMMANDS, firmware/config.py) before
anything is sent. With a key, every command is signed by tools/signing.py (same canonical form as the node).
Commands are never published retained (tools/operator_client.py refuses to): a retained command is handed to the
node again on every subscribe, and under MQTT 3.1.1 a node already online cannot tell it from a live one.
"""

import argparse
import json
import os
import sys
import threading
import time
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (ROOT, HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from firmware import config as configmod  # noqa: E402  (needs ROOT on sys.path)
from firmware.commands import COMMANDS  # noqa: E402
from firmware.schema import NAME_CHARS, Invalid  # noqa: E402

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

DEFAULT_CONFIG = os.path.join("~", ".config", "streetlight", "fleet.json")
DEFAULT_PREFIX = "city/lights"
_QUIET_S = 0.4  # retained messages arrive as one burst after subscribing: this long without news ends the burst
_SECRET_STANDIN = "0" * 32  # satisfies every secret field's schema when validating against a redacted config


class UsageError(Exception):
    """Bad arguments or a document that does not validate: exit 2, nothing sent."""


class Unreachable(Exception):
    """The broker could not be reached or refused us: exit 3."""


# --- settings ------------------------------------------------------------------------------------------------------


def parse_broker_url(url):
    """mqtt://host[:port] or mqtts://host[:port] (also bare host[:port]) → (tls, host, port)."""
    if "://" not in url:
        url = "mqtt://" + url
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
        raise UsageError("broker URL must be mqtt://host[:port] or mqtts://host[:port], not %r" % url)
    try:
        port = u.port or (8883 if u.scheme == "mqtts" else 1883)
    except ValueError:
        raise UsageError("bad port in broker URL %r" % url)
    return u.scheme == "mqtts", u.hostname, port


def load_settings(args, env=None):
    """Merge flags > environment > config file > defaults into one dict."""
    env = os.environ if env is None else env
    path = args.config or os.path.expanduser(DEFAULT_CONFIG)
    filed = {}
    if os.path.exists(path):
        try:
            with open(path) as f:
                filed = json.load(f)
        except (OSError, ValueError) as e:
            raise UsageError("config file %s: %s" % (path, e))
        if not isinstance(filed, dict):
            raise UsageError("config file %s: must be a JSON object" % path)
    elif args.config:
        raise UsageError("config file %s not found" % path)
    out = {}
    for key, flag in (("broker", "broker"), ("user", "user"), ("password", "password"), ("ca", "ca"),
                      ("cert", "cert"), ("cert_key", "cert_key"), ("key", "key"), ("group_key", "group_key"),
                      ("prefix", "prefix")):
        v = getattr(args, flag, None)
        if v is None:
            v = env.get("FLEET_" + key.upper())
        if v is None:
            v = filed.get(key)
        out[key] = v
    out["broker"] = out["broker"] or "mqtt://127.0.0.1:1883"
    out["prefix"] = out["prefix"] or DEFAULT_PREFIX
    return out


def make_signer(settings):
    """The signing hook: a tools/signing.Signer when a key is configured, else None (unsigned commands)."""
    key, gkey = settings.get("key"), settings.get("group_key")
    if not key and not gkey:
        return None
    try:
        from signing import Signer  # tools/signing.py
    except ImportError as e:
        raise UsageError("a signing key was given but tools/signing.py cannot be imported: %s" % e)
    return Signer(default_node_key=key, group_key=gkey or key)


def tls_options(settings, tls_on):
    """paho's tls_set() arguments for the settings (None: plain MQTT). A named file that is not there is a usage
    error here, not a misleading "broker unreachable" later."""
    files = {"ca_certs": settings.get("ca"), "certfile": settings.get("cert"), "keyfile": settings.get("cert_key")}
    for what, path in (("--ca", files["ca_certs"]), ("--cert", files["certfile"]), ("--cert-key", files["keyfile"])):
        if path and not os.path.isfile(path):
            raise UsageError("%s %s: no such file" % (what, path))
    if files["keyfile"] and not files["certfile"]:
        raise UsageError("--cert-key needs --cert (the client certificate it belongs to)")
    if not (tls_on or any(files.values())):
        return None
    return {k: v for k, v in files.items() if v}


def connect(settings, client_id=None, operator_class=None):
    """An Operator (tools/operator_client.py, or `operator_class` built on it) connected to the configured broker,
    or Unreachable."""
    from operator_client import Operator

    tls_on, host, port = parse_broker_url(settings["broker"])
    tls = tls_options(settings, tls_on)
    try:
        return (operator_class or Operator)(host, port, prefix=settings["prefix"], client_id=client_id,
                                            user=settings.get("user"), password=settings.get("password"), tls=tls,
                                            signer=make_signer(settings))
    except (OSError, RuntimeError) as e:
        raise Unreachable("broker %s unreachable: %s" % (settings["broker"], e))


# --- what the broker knows -----------------------------------------------------------------------------------------


def command_topic_filters(prefix):
    """Every topic a node takes commands or update chunks from: where nothing may stay retained."""
    return [prefix + "/+/cmd", prefix + "/group/+/cmd", prefix + "/all/cmd", prefix + "/+/ota"]


def is_command_topic(topic, prefix):
    if not topic.startswith(prefix + "/"):
        return False
    parts = topic[len(prefix) + 1:].split("/")
    return (len(parts) == 2 and parts[1] in ("cmd", "ota")) or parts == ["all", "cmd"] or \
        (len(parts) == 3 and parts[0] == "group" and parts[2] == "cmd")


class FleetView:
    """Wraps an Operator: remembers when each node was last heard live, reads replies per node from its raw log, and
    notes retained messages left on command topics (`retained_commands`)."""

    def __init__(self, op):
        self.op = op
        self.heard = {}  # node → host time of the last live (not retained) message
        self.retained_commands = {}  # topic → payload of a retained message on a command/update topic
        self._scan = 0  # index into op.raw already looked at by poll()
        inner = op.client.on_message

        def on_message(client, userdata, msg):
            if is_command_topic(msg.topic, op.prefix):
                # Only the retained copies the broker hands us on subscribing matter here; live commands (ours or
                # another console's) are none of the view's business.
                if msg.retain and msg.payload:
                    with op.cond:
                        self.retained_commands[msg.topic] = msg.payload
                return
            inner(client, userdata, msg)
            if not msg.retain:
                parts = msg.topic[len(op.prefix) + 1:].split("/")
                if len(parts) == 2:
                    self.heard[parts[0]] = time.time()

        op.client.on_message = on_message
        for f in command_topic_filters(op.prefix):
            op.client.subscribe(f, 1)

    def gather(self, wait):
        """Let the retained burst arrive: return after `wait` seconds, or earlier once quiet for a moment."""
        end = time.time() + wait
        seen = -1
        quiet_since = time.time()
        while time.time() < end:
            with self.op.cond:
                n = len(self.op.raw) + len(self.retained_commands)
            if n != seen:
                seen = n
                quiet_since = time.time()
            elif n > 0 and time.time() - quiet_since >= _QUIET_S:
                return
            time.sleep(0.05)

    def poll(self):
        """Messages that arrived since the last call: [(topic, payload, retained)]. Trims the Operator's log."""
        with self.op.cond:
            new = self.op.raw[self._scan:]
            self._scan = len(self.op.raw)
        return new

    def trim(self):
        with self.op.cond:
            del self.op.raw[:self._scan]
            self._scan = 0

    def nodes(self):
        with self.op.cond:
            return sorted(set(self.op.status) | set(self.op.state) | set(self.op.tele))

    def members(self, target):
        """(online, offline) node ids for a target: ("node", [ids]) / ("group", g) / ("all", None)."""
        kind, what = target
        if kind == "node":
            return list(what), []
        online, offline = [], []
        with self.op.cond:
            for n, st in sorted(self.op.status.items()):
                if kind == "group" and what not in (st.get("groups") or []):
                    continue
                (online if st.get("online") else offline).append(n)
        return online, offline

    def replies(self, cid):
        """{node: reply dict} for the command id, read from reply topics (the Operator's index loses the node)."""
        out = {}
        pre = self.op.prefix + "/"
        with self.op.cond:
            raw = list(self.op.raw)
        for topic, payload, _ in raw:
            if topic.startswith(pre) and topic.endswith("/reply"):
                try:
                    doc = json.loads(payload)
                except ValueError:
                    continue
                if isinstance(doc, dict) and doc.get("id") == cid:
                    out.setdefault(topic[len(pre):-len("/reply")], doc)
        return out

    def row(self, n):
        """One node's line of the fleet table, as a dict."""
        with self.op.cond:
            status = dict(self.op.status.get(n, {}))
            state = dict(self.op.state.get(n, {}))
            tele = dict(self.op.tele.get(n, {}))
        online = status.get("online")
        stamps = [t for t in (state.get("t"), tele.get("t"), self.heard.get(n)) if isinstance(t, (int, float))]
        wh = state.get("energy_wh", tele.get("energy_wh"))
        return {
            "id": n, "online": online, "level": state.get("level"), "reason": state.get("reason"),
            "faults": list(state.get("faults") or []), "energy_kwh": None if wh is None else round(wh / 1000.0, 3),
            "fw": status.get("fw", state.get("fw")), "last_seen": max(stamps) if stamps else None,
            "groups": list(status.get("groups") or []), "safe_mode": bool(status.get("safe_mode")),
        }


# --- formatting ----------------------------------------------------------------------------------------------------

LIST_COLUMNS = ("id", "online", "level", "reason", "faults", "energy kWh", "fw", "last seen")


def _cell(v):
    if v is None:
        return "-"
    if v is True:
        return "yes"
    if v is False:
        return "no"
    if isinstance(v, list):
        return ",".join(str(x) for x in v) if v else "-"
    return str(v)


def format_table(columns, rows):
    """Rows (lists of values) under column titles, left-aligned, two spaces apart."""
    cells = [[_cell(v) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(columns)).rstrip()]
    for r in cells:
        lines.append("  ".join(v.ljust(widths[i]) for i, v in enumerate(r)).rstrip())
    return "\n".join(lines)


def utc_text(t):
    if t is None:
        return None
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(t))


def list_table(rows):
    return format_table(LIST_COLUMNS, [[r["id"], r["online"], r["level"], r["reason"], r["faults"], r["energy_kwh"],
                                        r["fw"], utc_text(r["last_seen"])] for r in rows])


# --- parsing helpers -----------------------------------------------------------------------------------------------


def parse_duration(text):
    """'90', '90s', '15m', '2h', '1d', '1h30m' → seconds (int)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = text.strip().lower()
    if t.isdigit():
        return int(t)
    total, num = 0, ""
    for ch in t:
        if ch.isdigit():
            num += ch
        elif ch in units and num:
            total += int(num) * units[ch]
            num = ""
        else:
            raise UsageError("bad duration %r (examples: 90s, 15m, 2h, 1d, 1h30m)" % text)
    if num or total <= 0:
        raise UsageError("bad duration %r (examples: 90s, 15m, 2h, 1d, 1h30m)" % text)
    return total


def target_of(args):
    """("node", [ids]) / ("group", g) / ("all", None) from --node/--group/--all (exactly one)."""
    given = [x for x in (args.node, args.group, args.all or None) if x]
    if len(given) != 1:
        raise UsageError("say exactly one of --node ID, --group G, --all")
    if args.node:
        ids = [i for part in args.node for i in part.split(",") if i]
        for i in ids:
            _check_name(i, "--node")
        return ("node", ids)
    if args.group:
        _check_name(args.group, "--group")
        return ("group", args.group)
    return ("all", None)


def _check_name(name, flag):
    if not (0 < len(name) <= 32) or any(c not in NAME_CHARS for c in name) or name in configmod.RESERVED_IDS:
        raise UsageError("%s %r: ids and group names are [a-z0-9_-]{1,32}, not 'group' or 'all'" % (flag, name))


def checked(cmd, fields):
    """A command document validated with the node's own schema (firmware/commands.py), or UsageError."""
    doc = {"id": uuid.uuid4().hex[:12], "cmd": cmd}
    doc.update(fields)
    try:
        COMMANDS[cmd].check(doc, "")
    except Invalid as e:
        raise UsageError("invalid %s command: %s" % (cmd, e))
    return doc


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise UsageError("%s: %s" % (path, e.strerror or e))
    except ValueError as e:
        raise UsageError("%s: not JSON (%s)" % (path, e))


def _unredact(cfg):
    """A node's redacted config ("***" secrets) made valid again with stand-ins, for local validation only."""
    out = json.loads(json.dumps(cfg))
    for keys in configmod.SECRET_PATHS:
        d = out
        for k in keys[:-1]:
            d = d.get(k) if isinstance(d, dict) else None
        if isinstance(d, dict) and d.get(keys[-1]) == "***":
            d[keys[-1]] = _SECRET_STANDIN
    return out


def validate_patch(patch, bases):
    """Merge `patch` into every {node: config} of `bases` (None: the defaults) and validate; UsageError names both."""
    for node, base in sorted(bases.items()):
        base = configmod.defaults() if base is None else _unredact(base)
        try:
            configmod.validate(configmod.merge(base, patch))
        except Invalid as e:
            raise UsageError("%s: %s" % ("defaults" if node is None else node, e))


# --- sending commands ----------------------------------------------------------------------------------------------


def topic_and_dest(prefix, target, node=None):
    kind, what = target
    if kind == "group":
        return "%s/group/%s/cmd" % (prefix, what), "group:" + what
    if kind == "all":
        return "%s/all/cmd" % prefix, "all"
    return "%s/%s/cmd" % (prefix, node), node


class Run:
    """One CLI invocation's output: human text to stdout/stderr, or one JSON document at the end."""

    def __init__(self, as_json, out=None, err=None):
        self.json = as_json
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def say(self, text):
        if not self.json:
            self.out.write(text + "\n")
            self.out.flush()

    def progress(self, text):
        if not self.json:
            self.err.write(text + "\n")
            self.err.flush()

    def emit(self, doc):
        if self.json:
            self.out.write(json.dumps(doc, sort_keys=True) + "\n")
            self.out.flush()


def send_and_collect(view, run, target, doc, timeout):
    """Send one command to a target, show progress, return {node: result dict} (ok / error / timeout / offline)."""
    op = view.op
    online, offline = view.members(target)
    expected = set(online)
    kind, what = target
    sent = []
    if kind == "node":
        for n in online:  # a node id list: one message each, the same id (replies are told apart by topic)
            topic, dest = topic_and_dest(op.prefix, target, n)
            op.send(dest, doc["cmd"], topic=topic, **_fields(doc))
            sent.append(topic)
    else:
        topic, dest = topic_and_dest(op.prefix, target)
        op.send(dest, doc["cmd"], topic=topic, **_fields(doc))
        sent.append(topic)
    label = what if kind == "group" else ("all" if kind == "all" else ",".join(what))
    run.progress("sent %s to %s: %d online member(s)%s" % (
        doc["cmd"], label if kind == "all" else "%s %s" % (kind, label), len(expected),
        ", %d offline" % len(offline) if offline else ""))
    deadline = time.time() + timeout
    got = {}
    if not expected:
        deadline = time.time() + min(timeout, 2.0)  # nobody known: listen briefly for members we did not know of
    while time.time() < deadline:
        replies = view.replies(doc["id"])
        for n in sorted(set(replies) - set(got)):
            got[n] = replies[n]
            r = replies[n]
            run.progress("  %-24s %s  (%d/%d)" % (n, "ok" if r.get("ok") else "error: %s" % r.get("error"),
                                                   len(set(got) & expected), len(expected)))
        if expected and expected <= set(got):
            break
        with op.cond:
            op.cond.wait(0.1)
    results = {}
    for n in sorted(expected | set(got) | set(offline)):
        if n in got:
            r = got[n]
            results[n] = {"result": "ok" if r.get("ok") else "error", "reply": r}
            if not r.get("ok"):
                results[n]["error"] = r.get("error")
        elif n in offline:
            results[n] = {"result": "offline"}
        else:
            results[n] = {"result": "timeout"}
    return results


def _fields(doc):
    return {k: v for k, v in doc.items() if k != "cmd"}


def result_detail(r):
    if r["result"] == "error":
        return r.get("error") or "-"
    if r["result"] != "ok":
        return "no reply" if r["result"] == "timeout" else "node offline (LWT)"
    rep = r["reply"]
    bits = []
    for k in ("level", "until", "reason", "delta_s", "seconds", "restart"):
        if k in rep:
            v = rep[k]
            bits.append("%s=%s" % (k, utc_text(v) if k == "until" and v else v))
    return " ".join(bits) or "-"


def report_results(run, doc, target, results):
    ok = bool(results) and all(r["result"] == "ok" for r in results.values())
    if run.json:
        run.emit({"command": doc, "target": {"kind": target[0], "name": target[1]}, "results": results, "ok": ok})
    else:
        run.say(format_table(("node", "result", "detail"),
                             [[n, r["result"], result_detail(r)] for n, r in sorted(results.items())]))
        counts = {}
        for r in results.values():
            counts[r["result"]] = counts.get(r["result"], 0) + 1
        run.say("%d node(s): %s" % (len(results), ", ".join("%d %s" % (v, k) for k, v in sorted(counts.items()))
                                      or "no reply"))
    return EXIT_OK if ok else EXIT_FAILED


def fetch_configs(view, run, target, timeout):
    """{node: redacted config} from `get config` to the target; members that did not answer map to None."""
    doc = checked("get", {"what": "config"})
    res = send_and_collect(view, Run(True), target, doc, timeout)
    bases = {}
    for n, r in res.items():
        if r["result"] == "ok":
            bases[n] = r["reply"].get("config")
        else:
            run.progress("warning: %s gave no config (%s): its change is checked against the defaults only" % (
                n, r["result"]))
            bases[n] = None
    if not bases:
        bases[None] = None
    return bases


# --- subcommands ---------------------------------------------------------------------------------------------------


def cmd_list(view, run, args):
    view.gather(args.wait)
    rows = [view.row(n) for n in view.nodes()]
    with view.op.cond:
        stuck = sorted(view.retained_commands)
    if run.json:
        run.emit({"nodes": rows, "retained_commands": stuck})
    else:
        run.say(list_table(rows))
        on = sum(1 for r in rows if r["online"])
        run.say("%d node(s), %d online" % (len(rows), on))
    if stuck:
        run.progress(retained_warning(stuck))
    return EXIT_OK


def retained_warning(topics):
    return ("warning: %d retained message(s) on command topics: %s\n"
            "  The broker hands them to the node on every (re)subscribe. A node refuses such copies, but under\n"
            "  MQTT 3.1.1 a node that is online when one is published cannot tell it from a live command.\n"
            "  Remove them with: fleet.py clear-retained" % (len(topics), ", ".join(topics)))


def cmd_clear_retained(view, run, args):
    """Delete every retained message on command/update topics (a zero-byte retained publish each)."""
    view.gather(args.wait)
    with view.op.cond:
        stuck = sorted(view.retained_commands)
    if not args.dry_run:
        for topic in stuck:
            view.op.clear_retained(topic)
    if run.json:
        run.emit({"retained_commands": stuck, "cleared": not args.dry_run})
    else:
        for topic in stuck:
            run.say("%s %s" % ("would clear" if args.dry_run else "cleared", topic))
        run.say("%d retained message(s) on command topics%s" % (
            len(stuck), "" if args.dry_run or not stuck else " cleared (online nodes answer each: empty payload)"))
    return EXIT_OK


def describe(topic, payload, prefix):
    """(node, kind, doc, one-line text) for a message on a node topic, or None."""
    parts = topic[len(prefix) + 1:].split("/")
    if len(parts) != 2:
        return None
    node, kind = parts
    try:
        doc = json.loads(payload)
    except ValueError:
        doc = {"_unparsed": payload.decode("utf-8", "replace")}
    if kind == "status":
        text = "online fw %s groups %s%s" % (doc.get("fw"), ",".join(doc.get("groups") or []) or "-",
                                             " SAFE MODE" if doc.get("safe_mode") else "") \
            if doc.get("online") else "OFFLINE%s" % (" (%s)" % doc["reason"] if doc.get("reason") else "")
    elif kind == "state":
        text = "level %s (%s) faults %s energy %s Wh" % (doc.get("level"), doc.get("reason"),
                                                        ",".join(doc.get("faults") or []) or "-",
                                                        doc.get("energy_wh"))
    elif kind == "event":
        if doc.get("kind") == "alarm":
            text = "ALARM %s %s" % (doc.get("name"), "raised" if doc.get("active") else "cleared")
        else:
            text = "event %s %s" % (doc.get("kind"), json.dumps({k: v for k, v in doc.items()
                                                                  if k not in ("kind", "seq", "t")}))
    elif kind == "reply":
        text = "reply %s %s %s" % (doc.get("cmd"), doc.get("id"), "ok" if doc.get("ok") else "error: %s" %
                                   doc.get("error"))
    elif kind == "tele":
        text = "tele level %s lux %s W %s" % (doc.get("level"), doc.get("lux"), doc.get("w"))
    else:
        return None
    return node, kind, doc, text


def cmd_watch(view, run, args):
    end = time.time() + args.seconds if args.seconds else None
    if args.table:
        interactive = run.out.isatty() and not run.json
        while end is None or time.time() < end:
            view.gather(min(args.interval, max(0.0, end - time.time())) if end else args.interval)
            view.poll()
            view.trim()
            rows = [view.row(n) for n in view.nodes()]
            if run.json:
                run.emit({"t": time.time(), "nodes": rows})
            else:
                run.say(("\x1b[H\x1b[2J" if interactive else "") + list_table(rows) + "\n")
        return EXIT_OK
    count = 0
    while end is None or time.time() < end:
        for topic, payload, retained in view.poll():
            d = describe(topic, payload, view.op.prefix)
            if d is None or (d[1] == "tele" and not args.tele):
                continue
            node, kind, doc, text = d
            count += 1
            now = time.time()
            if run.json:
                run.emit({"t": now, "node": node, "kind": kind, "retained": retained, "doc": doc})
            else:
                run.say("%s  %-20s %s%s" % (time.strftime("%H:%M:%S", time.localtime(now)), node, text,
                                             "  (retained)" if retained else ""))
        view.trim()
        time.sleep(0.1)
    run.progress("%d message(s) watched" % count)
    return EXIT_OK


def _command_run(view, run, args, cmd, fields):
    target = target_of(args)
    doc = checked(cmd, fields)
    view.gather(args.wait)
    return report_results(run, doc, target, send_and_collect(view, run, target, doc, args.timeout))


def cmd_set(view, run, args):
    fields = {"level": args.level, "duration_s": parse_duration(args.duration) if args.duration else None}
    return _command_run(view, run, args, "set", fields)


def cmd_clear(view, run, args):
    return _command_run(view, run, args, "clear", {})


def cmd_reboot(view, run, args):
    return _command_run(view, run, args, "reboot", {"safe": args.safe})


def cmd_time_sync(view, run, args):
    target = target_of(args)
    doc = checked("time", {"utc": int(time.time())})
    view.gather(args.wait)
    results = send_and_collect(view, run, target, doc, args.timeout)
    # A big jump needs a second, agreeing source (firmware/timebase.py): --confirm sends the time once more.
    again = [n for n, r in results.items() if r["result"] == "error" and "needs confirmation" in (r.get("error") or "")]
    if again and args.confirm:
        doc2 = checked("time", {"utc": int(time.time())})
        results.update(send_and_collect(view, run, ("node", again), doc2, args.timeout))
    elif again:
        run.progress("%d node(s) need a confirming second time source: repeat with --confirm" % len(again))
    return report_results(run, doc, target, results)


def cmd_identify(view, run, args):
    return _command_run(view, run, args, "identify", {"seconds": args.seconds})


def cmd_get(view, run, args):
    target = target_of(args)
    doc = checked("get", {"what": args.what})
    view.gather(args.wait)
    results = send_and_collect(view, run, target, doc, args.timeout)
    if run.json:
        return report_results(run, doc, target, results)
    for n, r in sorted(results.items()):
        run.say("== %s: %s" % (n, r["result"] if r["result"] != "error" else "error: %s" % r.get("error")))
        if r["result"] != "ok":
            continue
        rep = r["reply"]
        if args.what == "log":
            for line in rep.get("log") or []:
                run.say("  " + str(line))
        else:
            body = {k: v for k, v in rep.items() if k not in ("id", "ok", "cmd")}
            run.say(json.dumps(body if len(body) != 1 else list(body.values())[0], indent=2, sort_keys=True))
    ok = bool(results) and all(r["result"] == "ok" for r in results.values())
    return EXIT_OK if ok else EXIT_FAILED


def cmd_program_push(view, run, args):
    target = target_of(args)
    doc = _read_json(args.file)
    if not isinstance(doc, dict) or "programs" not in doc:
        raise UsageError("%s: needs a \"programs\" object (and optionally \"calendar\")" % args.file)
    fields = {"programs": doc["programs"], "calendar": doc.get("calendar")}
    cmd = checked("program", fields)
    patch = {"programs": doc["programs"]}
    if doc.get("calendar") is not None:
        patch["calendar"] = doc["calendar"]
    view.gather(args.wait)
    validate_patch(patch, fetch_configs(view, run, target, args.timeout))
    return report_results(run, cmd, target, send_and_collect(view, run, target, cmd, args.timeout))


def cmd_config_push(view, run, args):
    target = target_of(args)
    patch = _read_json(args.file)
    if not isinstance(patch, dict) or not patch:
        raise UsageError("%s: a partial config is a non-empty JSON object of sections" % args.file)
    cmd = checked("config", {"set": patch})
    if "node" in patch and "id" in (patch.get("node") or {}) and target[0] != "node":
        raise UsageError("%s: node.id cannot be set on a group or on all nodes" % args.file)
    view.gather(args.wait)
    validate_patch(patch, fetch_configs(view, run, target, args.timeout))
    return report_results(run, cmd, target, send_and_collect(view, run, target, cmd, args.timeout))


def cmd_alarms(view, run, args):
    view.gather(args.wait)
    end = time.time() + args.listen
    while time.time() < end:
        time.sleep(0.1)
    active = []
    for n in view.nodes():
        row = view.row(n)
        for f in row["faults"]:
            active.append({"node": n, "fault": f, "online": row["online"], "since_state": row["last_seen"]})
    events = []
    with view.op.cond:
        evs = list(view.op.events)
    for node, ev in evs:
        if ev.get("kind") in ("alarm", "config_error"):
            events.append({"node": node, "t": ev.get("t"), "kind": ev.get("kind"), "name": ev.get("name"),
                           "active": ev.get("active"), "detail": ev.get("detail", ev.get("problems"))})
    if run.json:
        run.emit({"active": active, "events": events})
    else:
        run.say("active faults")
        run.say(format_table(("node", "fault", "online"), [[a["node"], a["fault"], a["online"]] for a in active])
                if active else "  none")
        run.say("alarm events heard (%.0f s)" % (args.wait + args.listen))
        run.say(format_table(("time", "node", "alarm", "state", "detail"),
                             [[utc_text(e["t"]), e["node"], e["name"] or e["kind"],
                               "raised" if e["active"] else ("cleared" if e["active"] is False else "-"),
                               json.dumps(e["detail"]) if e["detail"] is not None else None] for e in events])
                if events else "  none")
    return EXIT_OK


# --- collector -----------------------------------------------------------------------------------------------------


def collect_topics(prefix, kinds, share_group):
    """Subscriptions for the collector; `$share/<group>/...` splits the messages among collectors of one group."""
    subs = ["%s/+/%s" % (prefix, k) for k in kinds]
    if share_group:
        subs = ["$share/%s/%s" % (share_group, s) for s in subs]
    return subs


def cmd_collect(settings, run, args):
    """Write every message of the chosen kinds as a JSON line; plain paho client (no Operator bookkeeping)."""
    import paho.mqtt.client as mqtt

    tls_on, host, port = parse_broker_url(settings["broker"])
    prefix = settings["prefix"]
    kinds = [k for k in args.kinds.split(",") if k]
    for k in kinds:
        if k not in ("tele", "event", "state", "status", "reply"):
            raise UsageError("--kinds: unknown kind %r" % k)
    subs = collect_topics(prefix, kinds, None if args.no_share else args.share_group)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="collector-" + uuid.uuid4().hex[:8],
                         protocol=mqtt.MQTTv311)
    if settings.get("user") is not None:
        client.username_pw_set(settings["user"], settings.get("password"))
    tls = tls_options(settings, tls_on)
    if tls is not None:
        client.tls_set(**tls)
    lock = threading.Lock()
    counts = {"messages": 0}
    connected = threading.Event()
    out = open(args.out, "a", buffering=1) if args.out != "-" else run.out

    def on_connect(c, userdata, flags, reason_code, properties):
        for s in subs:
            c.subscribe(s, 1)
        connected.set()

    def on_message(c, userdata, msg):
        parts = msg.topic[len(prefix) + 1:].split("/")
        if len(parts) != 2:
            return
        try:
            doc = json.loads(msg.payload)
        except ValueError:
            doc = {"_unparsed": msg.payload.decode("utf-8", "replace")}
        line = json.dumps({"rx": round(time.time(), 3), "node": parts[0], "kind": parts[1], "retained": msg.retain,
                           "doc": doc}, sort_keys=True)
        with lock:
            out.write(line + "\n")
            counts["messages"] += 1
            counts[parts[1]] = counts.get(parts[1], 0) + 1

    client.on_connect = on_connect
    client.on_message = on_message
    try:
        client.connect(host, port, keepalive=30)
    except OSError as e:
        raise Unreachable("broker %s unreachable: %s" % (settings["broker"], e))
    client.loop_start()
    try:
        if not connected.wait(10):
            raise Unreachable("broker %s did not accept the collector" % settings["broker"])
        run.progress("collecting %s into %s" % (" ".join(subs), args.out))
        end = time.time() + args.seconds if args.seconds else None
        while end is None or time.time() < end:
            time.sleep(0.2 if end is None else max(0.0, min(0.2, end - time.time())))
    except KeyboardInterrupt:
        pass
    finally:
        client.loop_stop()
        client.disconnect()
        if out is not run.out:
            out.close()
    with lock:
        summary = dict(counts)
    if run.json:
        run.emit({"collected": summary, "subscriptions": subs})
    else:
        run.progress("collected %d message(s): %s" % (summary["messages"], ", ".join(
            "%s %d" % (k, v) for k, v in sorted(summary.items()) if k != "messages") or "-"))
    return EXIT_OK


# --- argument parsing ----------------------------------------------------------------------------------------------


def _targets(p):
    p.add_argument("--node", action="append", help="node id (repeat or comma-separate for several)")
    p.add_argument("--group", help="group name (members from their retained birth message)")
    p.add_argument("--all", action="store_true", help="every node (broadcast topic)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the replies (default 10)")


def add_settings_args(ap):
    """The broker and signing settings every fleet tool takes (tools/ota.py too); load_settings() reads them."""
    ap.add_argument("--broker", help="mqtt://host:port or mqtts://host:port (FLEET_BROKER)")
    ap.add_argument("--user", help="MQTT user (FLEET_USER)")
    ap.add_argument("--password", help="MQTT password (FLEET_PASSWORD)")
    ap.add_argument("--ca", help="CA certificate file for mqtts:// (FLEET_CA)")
    ap.add_argument("--cert", help="client certificate file (PEM) for brokers that require one (FLEET_CERT)")
    ap.add_argument("--cert-key", help="private key file of --cert (FLEET_CERT_KEY)")
    ap.add_argument("--key", help="HMAC key: sign every command (FLEET_KEY)")
    ap.add_argument("--group-key", help="HMAC key for group/broadcast commands; default --key (FLEET_GROUP_KEY)")
    ap.add_argument("--prefix", help="topic prefix, default city/lights (FLEET_PREFIX)")
    ap.add_argument("--config", help="settings file (default ~/.config/streetlight/fleet.json)")


def build_parser():
    ap = argparse.ArgumentParser(prog="fleet", description=__doc__.split("\n")[0])
    add_settings_args(ap)
    ap.add_argument("--json", action="store_true", help="machine-readable output (one JSON document)")
    ap.add_argument("--wait", type=float, default=3.0, help="max seconds to gather retained status/state (default 3)")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("list", help="table of nodes: online, level, reason, faults, energy, fw, last seen")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("watch", help="live event stream (or --table), bounded by --seconds")
    p.add_argument("--seconds", type=float, default=0, help="stop after this long (default: until Ctrl-C)")
    p.add_argument("--table", action="store_true", help="redraw the fleet table instead of streaming events")
    p.add_argument("--interval", type=float, default=2.0, help="table refresh period")
    p.add_argument("--tele", action="store_true", help="include telemetry in the stream")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("set", help="override the level (0-100), optionally --for a duration")
    p.add_argument("level", type=int)
    p.add_argument("--for", dest="duration", help="how long: 90s, 15m, 2h, 1d (default: until cleared)")
    _targets(p)
    p.set_defaults(func=cmd_set)

    p = sub.add_parser("clear", help="end the override")
    _targets(p)
    p.set_defaults(func=cmd_clear)

    p = sub.add_parser("get", help="state, config (secrets hidden), log or counters")
    p.add_argument("what", choices=("state", "config", "log", "counters"))
    _targets(p)
    p.set_defaults(func=cmd_get)

    p = sub.add_parser("program", help="program push FILE: replace programs (+calendar)")
    p.add_argument("action", choices=("push",))
    p.add_argument("file")
    _targets(p)
    p.set_defaults(func=cmd_program_push)

    p = sub.add_parser("config", help="config push FILE: partial config, merged and validated first")
    p.add_argument("action", choices=("push",))
    p.add_argument("file")
    _targets(p)
    p.set_defaults(func=cmd_config_push)

    p = sub.add_parser("reboot", help="restart the node(s)")
    p.add_argument("--safe", action="store_true", help="come back in safe mode")
    _targets(p)
    p.set_defaults(func=cmd_reboot)

    p = sub.add_parser("time-sync", help="send the host's UTC time")
    p.add_argument("--confirm", action="store_true", help="send again where a big jump needs confirmation")
    _targets(p)
    p.set_defaults(func=cmd_time_sync)

    p = sub.add_parser("identify", help="blink the lamp so a technician finds the post")
    p.add_argument("--seconds", type=int, default=30)
    _targets(p)
    p.set_defaults(func=cmd_identify)

    p = sub.add_parser("alarms", help="active faults across the fleet + alarm events heard")
    p.add_argument("--listen", type=float, default=0.0, help="extra seconds to listen for alarm events")
    p.set_defaults(func=cmd_alarms)

    p = sub.add_parser("clear-retained", help="delete retained messages left on command/update topics")
    p.add_argument("--dry-run", action="store_true", help="only list them")
    p.set_defaults(func=cmd_clear_retained)

    p = sub.add_parser("collect", help="write tele/event/state/status as JSON lines (shared subscription)")
    p.add_argument("--out", default="-", help="JSON-lines file to append to (default stdout)")
    p.add_argument("--kinds", default="tele,event,state,status", help="comma list of topic kinds")
    p.add_argument("--share-group", default="fleet-collectors", help="$share group name (collectors split load)")
    p.add_argument("--no-share", action="store_true", help="plain subscription: this collector gets everything")
    p.add_argument("--seconds", type=float, default=0, help="stop after this long (default: until Ctrl-C)")
    p.set_defaults(func=None)
    return ap


def main(argv=None, out=None, err=None):
    ap = build_parser()
    err = err or sys.stderr
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:  # argparse: --help is 0, a usage error is 2
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    run = Run(args.json, out, err)
    view = None
    try:
        settings = load_settings(args)
        parse_broker_url(settings["broker"])
        if args.command == "collect":
            return cmd_collect(settings, run, args)
        if args.command in ("set", "clear", "get", "program", "config", "reboot", "time-sync", "identify"):
            target_of(args)  # usage errors before connecting
        view = FleetView(connect(settings))
        return args.func(view, run, args)
    except UsageError as e:
        err.write("fleet: %s\n" % e)
        if run.json:
            run.emit({"error": str(e), "exit": EXIT_USAGE})
        return EXIT_USAGE
    except Unreachable as e:
        err.write("fleet: %s\n" % e)
        if run.json:
            run.emit({"error": str(e), "exit": EXIT_UNREACHABLE})
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return EXIT_FAILED
    finally:
        if view is not None:
            view.op.close()


if __name__ == "__main__":
    sys.exit(main())
