"""Fleet OTA: build a signed update bundle from the repo and roll it out to nodes over MQTT, with a per-node result.

    python tools/ota.py build --out DIR [--version 0.2.0] [--format py|mpy] [--march xtensawin] (--key K | --key-file F)
    python tools/ota.py push --bundle DIR [SETTINGS] (--node ID [--node ID ...] | --group G | --all)
                             [--percent P] [--force] [--window 4] [--chunk 4096] [--parallel 4] [--max-refusals 3]
                             [--json]
    python tools/ota.py versions [SETTINGS] [--json]

SETTINGS are tools/fleet.py's, read by its own code (fleet.add_settings_args / load_settings / connect): --broker
mqtt://host:1883 | mqtts://host:8883 | host:port, --user, --password, --ca, --cert, --cert-key, --key (signs
commands), --group-key, --prefix, --config; else FLEET_BROKER, FLEET_USER, ... in the environment; else
~/.config/streetlight/fleet.json. (build's --key is the update key that signs the manifest: another key.)

A bundle is a directory: `bundle.json` ({"manifest", "manifest_sig"}) and `files/<path>` for every file the
manifest lists (firmware/, drivers/, lib/ of the source tree, as .py or compiled by mpy-cross to .mpy). The bundle's
firmware/version.py is written with the bundle's version, so a node reports the version it really runs. The key
signs the manifest (HMAC-SHA256 over firmware.ota.manifest_bytes); it never goes into the bundle.

push, per node (several nodes in parallel): `ota_status` — when the node already stages this very bundle, the
transfer resumes where the node's flash says; otherwise `ota_begin`. Chunks (binary, firmware.ota.CHUNK_HEADER +
<= 4 KB) go to `<prefix>/<node>/ota`, at most `--window` unacknowledged at a time; every ack names the next byte
the node expects, so a lost or reordered chunk just moves the sender back. When acks stop (link drop, node reset)
the sender asks `ota_status` again and resumes. Then `ota_commit` (the node verifies from flash, switches, resets)
and the outcome is awaited: the node's `ota_confirmed` / `ota_rollback` event, or its `ota_status` result.
--percent picks a stable canary subset (the same nodes for the same version on every run). A node that already runs
the bundle's version is skipped unless --force. A node that refuses the same file or position --max-refusals times
(e.g. "sha256 mismatch ... file restarted" again and again), or that has been sent 4 times the bundle, is given up
on: result failed, its spare slot emptied (ota_abort).

Exit status: 0 every selected node confirmed the new version or was skipped; 1 some node failed, rolled back or
timed out; 2 usage error or a bad bundle (nothing sent); 3 broker unreachable. Errors are one line on stderr.
"""

import argparse
import hashlib
import json
import math
import os
import shutil
import struct
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (ROOT, HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from firmware import ota as otamod  # noqa: E402
from firmware.signing import hmac_sha256, key_bytes  # noqa: E402
from firmware.schema import Invalid  # noqa: E402
from provision import compile_text  # noqa: E402  (tools/: .mpy files are compiled as bundles compile them)

import fleet  # noqa: E402  (tools/fleet.py: the broker settings every fleet tool shares)
from fleet import EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, Unreachable, UsageError  # noqa: E402

DEVICE_DIRS = ("firmware", "drivers", "lib")
BUNDLE_FILE = "bundle.json"
OUTCOMES = ("ota_confirmed", "ota_rollback")
NODE_MAX_PAYLOAD = 8192  # the node's default mqtt.max_payload: a larger command is discarded unread

# --- build -----------------------------------------------------------------------------------------------------------


def repo_version(src=ROOT):
    ns = {}
    with open(os.path.join(src, "firmware", "version.py")) as f:
        exec(f.read(), ns)
    return ns["VERSION"]


def device_files(src=ROOT, exclude=()):
    """Relative paths of every device source file under firmware/, drivers/, lib/ (sorted, no caches)."""
    out = []
    for top in DEVICE_DIRS:
        base = os.path.join(src, top)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__pycache__")))
            for name in sorted(filenames):
                if name.endswith(".py"):
                    rel = os.path.relpath(os.path.join(dirpath, name), src).replace(os.sep, "/")
                    if rel not in exclude:
                        out.append(rel)
    # __init__ first: a package is complete on flash before its modules (it does not matter for correctness,
    # the slot is only used after commit, but it keeps the order stable and readable)
    return sorted(out, key=lambda p: (p.split("/")[0], p.count("/"), not p.endswith("__init__.py"), p))


def build_bundle(out, key, version=None, src=ROOT, fmt="py", march="xtensawin", exclude=(), overrides=None):
    """Write a bundle to `out` and return {"manifest", "manifest_sig"}. `key`: key text or bytes.
    `overrides`: {relative .py path: source text} replacing (or adding) files — tests use it for broken builds."""
    kb = key_bytes(key) if isinstance(key, str) else key
    if not kb:
        raise ValueError("update key must be >= 32 hex digits or >= 16 characters")
    version = version or repo_version(src)
    otamod.parse_version(version)
    overrides = dict(overrides or {})
    overrides["firmware/version.py"] = (
        '"""The version of this firmware image (written by tools/ota.py for an update bundle)."""\n\n'
        "VERSION = %r\n" % version)
    paths = device_files(src, exclude)
    for p in overrides:
        if p not in paths:
            paths.append(p)
    if os.path.exists(out):
        shutil.rmtree(out)
    files_dir = os.path.join(out, "files")
    os.makedirs(files_dir)
    entries = []
    for rel in paths:
        if rel in overrides:
            text = overrides[rel].encode() if isinstance(overrides[rel], str) else overrides[rel]
        else:
            with open(os.path.join(src, rel), "rb") as f:
                text = f.read()
        dest_rel = rel
        dest = os.path.join(files_dir, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if fmt == "mpy":
            dest_rel = rel[:-3] + ".mpy"
            dest = os.path.join(files_dir, dest_rel)
            data = compile_text(text.decode(), rel, dest, march)  # as bundles are compiled: docs stripped
        else:
            data = text
            with open(dest, "wb") as f:
                f.write(data)
        otamod.check_path(dest_rel)
        entries.append({"path": dest_rel, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    manifest = otamod.check_manifest({"format": 1, "version": version, "files": entries})
    bundle = {"manifest": manifest, "manifest_sig": otamod.sign_manifest(manifest, kb, hmac_sha256)}
    size = begin_payload_size(bundle)
    if size > NODE_MAX_PAYLOAD:
        raise ValueError("the bundle's ota_begin command would be %d bytes: more than a node reads (mqtt.max_payload, "
                         "default %d); leave files out with --exclude" % (size, NODE_MAX_PAYLOAD))
    with open(os.path.join(out, BUNDLE_FILE), "w") as f:
        json.dump(bundle, f, indent=1)
    return bundle


def begin_payload_size(bundle):
    """Bytes of the ota_begin command carrying this bundle's manifest, with room for id, ts and a signature."""
    doc = {"id": "x" * 32, "cmd": "ota_begin", "manifest": bundle["manifest"], "manifest_sig": bundle["manifest_sig"],
           "force": False, "ts": 2 ** 32, "sig": "0" * 64}
    return len(json.dumps(doc))


def load_bundle(path):
    with open(os.path.join(path, BUNDLE_FILE)) as f:
        bundle = json.load(f)
    otamod.check_manifest(bundle["manifest"])
    return bundle


class BundleData:
    """The bytes of a bundle's files, read once, and the byte layout the node walks through (file by file)."""

    def __init__(self, path, bundle=None):
        self.path = path
        self.bundle = bundle or load_bundle(path)
        self.manifest = self.bundle["manifest"]
        self.sig = self.bundle["manifest_sig"]
        self.session = otamod.session_of(self.sig)
        self.files = self.manifest["files"]
        self.data = []
        self.start = []
        pos = 0
        for f in self.files:
            with open(os.path.join(path, "files", f["path"]), "rb") as fh:
                d = fh.read()
            if len(d) != f["size"] or hashlib.sha256(d).hexdigest() != f["sha256"]:
                raise ValueError("bundle file %s does not match its manifest" % f["path"])
            self.data.append(d)
            self.start.append(pos)
            pos += len(d)
        self.total = pos

    def linear(self, file, offset):
        """(file index, offset) as the node reports it → bytes done in the whole bundle."""
        if file >= len(self.files):
            return self.total
        return self.start[file] + offset

    def chunk_at(self, lin, size):
        """(file index, offset, bytes) of the chunk starting at linear position `lin` (never crossing a file)."""
        for i, f in enumerate(self.files):
            if f["size"] and self.start[i] <= lin < self.start[i] + f["size"]:
                off = lin - self.start[i]
                return i, off, self.data[i][off:off + size]
        raise ValueError("position %d is past the end" % lin)


def encode_chunk(session, file, offset, data):
    return struct.pack(otamod.CHUNK_HEADER, otamod.CHUNK_FORMAT, file, session, offset) + data


# --- MQTT ------------------------------------------------------------------------------------------------------------


def _operator_class():
    from operator_client import Operator

    class OtaOperator(Operator):
        """The shared Operator, plus chunk acks routed per node (they would otherwise pile up under one id)."""

        def __init__(self, *args, **kwargs):
            self.acks = {}
            Operator.__init__(self, *args, **kwargs)

        def _on_message(self, client, userdata, msg):
            if msg.topic.endswith("/reply"):
                try:
                    doc = json.loads(msg.payload)
                except ValueError:
                    doc = None
                if isinstance(doc, dict) and doc.get("cmd") == "ota_chunk":
                    node = msg.topic[len(self.prefix) + 1:].split("/")[0]
                    with self.cond:
                        self.acks.setdefault(node, []).append(doc)
                        self.cond.notify_all()
                    return
            Operator._on_message(self, client, userdata, msg)

    return OtaOperator


def connect(broker, prefix=fleet.DEFAULT_PREFIX, **settings):
    """A push operator for Python callers: `broker` in any form fleet.py takes (host:port, mqtt://, mqtts://), the
    other settings named as fleet.load_settings names them (user, password, ca, cert, cert_key, key, group_key)."""
    return fleet.connect(dict(settings, broker=broker, prefix=prefix), operator_class=_operator_class())


def select_nodes(status, nodes=None, group=None, everyone=False, percent=None, salt="", online_only=True):
    """Targets from the retained births (`status`: node → birth dict). Explicit `nodes` are taken as given; a group
    or --all picks the online nodes that announce it. `percent` keeps a stable pseudo-random share (canary)."""
    if nodes:
        chosen = list(nodes)
    else:
        chosen = []
        for n, st in sorted(status.items()):
            if online_only and not st.get("online"):
                continue
            if everyone or (group is not None and group in (st.get("groups") or ())):
                chosen.append(n)
    if percent is not None and chosen:
        ranked = sorted(chosen, key=lambda n: hashlib.sha256(("%s/%s" % (salt, n)).encode()).hexdigest())
        chosen = sorted(ranked[:max(1, int(math.ceil(len(chosen) * percent / 100.0)))])
    return chosen


class NodePush:
    """One node's rollout. `run()` fills `result`: node, from, to, result (confirmed | rolled_back | skipped |
    failed | timeout), detail, seconds, bytes sent, resends, resyncs.

    A node already running the bundle's version is skipped unless `force` (a canary must not restart again). The
    push gives up — result failed, the node's spare slot emptied with ota_abort — when the node refuses the same
    place (a file's sha256, a position) `max_refusals` times, or once `max_send_factor` times the bundle
    has been sent: a node that keeps refusing must not be fed the image forever."""

    def __init__(self, op, node, bd, force=False, window=4, chunk=4096, ack_timeout=10.0, cmd_timeout=15.0,
                 outcome_timeout=300.0, max_resyncs=20, progress=None, max_refusals=3, max_send_factor=4.0):
        self.op = op
        self.node = node
        self.bd = bd
        self.force = force
        self.window = max(1, window)
        self.chunk = max(256, min(chunk, otamod.MAX_CHUNK))
        self.ack_timeout = ack_timeout
        self.cmd_timeout = cmd_timeout
        self.outcome_timeout = outcome_timeout
        self.max_resyncs = max_resyncs
        self.max_refusals = max_refusals
        self.max_send_factor = max_send_factor
        self.progress = progress
        self._refusals = {}  # (file, offset) the node sent us back to → how often
        with op.cond:
            before = op.status.get(node, {}).get("fw")
        self.result = {"node": node, "from": before, "to": bd.manifest["version"], "result": None, "detail": "",
                       "seconds": None, "transfer_s": None, "bytes": 0, "resends": 0, "resyncs": 0}
        self._last_pct = -100

    def _cmd(self, cmd, timeout=None, **fields):
        return self.op.command(self.node, cmd, timeout=timeout or self.cmd_timeout, **fields)

    def _topic(self):
        return "%s/%s/ota" % (self.op.prefix, self.node)

    def _report(self, done):
        if self.progress is None:
            return
        pct = 100 * done // max(1, self.bd.total)
        if pct - self._last_pct >= 10 or done == self.bd.total:
            self._last_pct = pct
            self.progress("%s: %3d%% (%d/%d bytes)" % (self.node, pct, done, self.bd.total))

    def _start(self, first=False):
        """Where to start: resume the node's own staging of this bundle, else begin. Returns the linear position.
        On the `first` call, raises _Skipped when the node already runs this version (and not `force`)."""
        try:
            st = self._cmd("ota_status")
        except TimeoutError:
            st = {}  # ota_begin asks again, and times out itself when the node is not there
        target = self.bd.manifest["version"]
        if first and st.get("ok"):
            self.result["from"] = st.get("version", self.result["from"])
            if st.get("version") == target and not self.force:
                raise _Skipped("already running %s%s; --force installs it again" % (
                    target, " (on trial)" if st.get("trial") else ""))
        staging = st.get("staging") if st.get("ok") else None
        same_version = staging is not None and staging.get("version") == self.bd.manifest["version"]
        if staging and staging.get("session") == self.bd.session and same_version:
            return self.bd.linear(staging["file"], staging["offset"])
        r = self._cmd("ota_begin", manifest=self.bd.manifest, manifest_sig=self.bd.sig, force=self.force)
        if not r.get("ok"):
            raise _Failed(r.get("error", "ota_begin refused"))
        return self.bd.linear(r["file"], r["offset"])

    def _take_acks(self):
        with self.op.cond:
            acks = self.op.acks.get(self.node, [])
            self.op.acks[self.node] = []
        return acks

    def _wait_ack(self, timeout):
        try:
            self.op.wait_for(lambda: self.op.acks.get(self.node), timeout)
        except TimeoutError:
            return []
        return self._take_acks()

    def _refused(self, ack):
        """Count a refusal that sends us back to the node's position; give up when one place is refused too often."""
        where = (ack["file"], ack["offset"])
        n = self._refusals.get(where, 0) + 1
        self._refusals[where] = n
        if n >= self.max_refusals:
            files = self.bd.files
            name = files[ack["file"]]["path"] if ack["file"] < len(files) else "the end"
            raise _Failed("gave up: %s refused %d times at offset %d (%s)" % (name, n, ack["offset"],
                                                                             ack.get("error", "refused")))

    def _transfer(self):
        bd = self.bd
        acked = nxt = self._start(first=True)
        self._take_acks()  # nothing from an earlier attempt may count
        rewound = None
        budget = max(bd.total * self.max_send_factor, bd.total + 4 * self.chunk)
        while acked < bd.total:
            if self.result["bytes"] > budget:
                raise _Failed("gave up: %d bytes sent for a %d-byte bundle" % (self.result["bytes"], bd.total))
            while nxt < bd.total and nxt - acked < self.window * self.chunk:
                i, off, data = bd.chunk_at(nxt, self.chunk)
                self.op.client.publish(self._topic(), encode_chunk(bd.session, i, off, data), qos=1)
                self.result["bytes"] += len(data)
                nxt += len(data)
            acks = self._wait_ack(self.ack_timeout)
            if not acks:
                # Silence: the link dropped or the node restarted. Its flash knows where it stands.
                self.result["resyncs"] += 1
                if self.result["resyncs"] > self.max_resyncs:
                    raise _Failed("no acks after %d resyncs" % self.max_resyncs)
                acked = nxt = self._resync()
                rewound = None
                continue
            for a in acks:
                if a.get("session") not in (None, bd.session):
                    continue
                pos = bd.linear(a["file"], a["offset"]) if "file" in a else None
                if a.get("ok"):
                    acked = max(acked, pos)
                    rewound = None
                    self._report(acked)
                elif pos is not None and a.get("error") != "transfer complete: send ota_commit":
                    # Out of order, a bad length, a hash mismatch: go back to what the node expects — once per
                    # position, since chunks already in flight behind the gap are refused with the same position.
                    acked = pos
                    if pos != rewound:
                        rewound = pos
                        self.result["resends"] += 1
                        nxt = pos
                        self._refused(a)
                    if "sha256 mismatch" in a.get("error", ""):
                        self.result["detail"] = a["error"]
                elif pos is not None:
                    acked = nxt = bd.total
                else:
                    self.result["resyncs"] += 1
                    if self.result["resyncs"] > self.max_resyncs:
                        raise _Failed(a.get("error", "transfer refused"))
                    acked = nxt = self._resync()
                    rewound = None
                    break

    def _resync(self):
        deadline = time.time() + max(self.outcome_timeout, 60)
        while True:
            try:
                return self._start()
            except TimeoutError:
                if time.time() > deadline:
                    raise _Failed("node unreachable while resuming")

    def _commit(self):
        r = self._cmd("ota_commit", timeout=max(self.cmd_timeout, 60))
        if not r.get("ok"):
            raise _Failed("commit refused: %s" % r.get("error"))

    def _outcome(self, since_events):
        target = self.bd.manifest["version"]
        deadline = time.time() + self.outcome_timeout
        next_poll = time.time() + 2
        while time.time() < deadline:
            with self.op.cond:
                evs = [e for n, e in self.op.events[since_events:] if n == self.node and e.get("kind") in OUTCOMES
                       and e.get("version") == target]
            if evs:
                return evs[-1]
            if time.time() >= next_poll:
                next_poll = time.time() + 3
                try:
                    st = self._cmd("ota_status", timeout=3)
                except TimeoutError:
                    st = {}
                res = st.get("result") if st.get("ok") else None
                if res and res.get("version") == target and res.get("kind") in OUTCOMES and not st.get("trial"):
                    return res
            try:
                self.op.wait_for(lambda: len(self.op.events) > since_events, 0.5)
            except TimeoutError:
                pass
        return None

    def _abort(self):
        # Best effort: the spare slot's partial image is flash the node may need; it is wiped at the next begin too.
        try:
            self._cmd("ota_abort", timeout=5)
        except TimeoutError:
            pass

    def run(self):
        t0 = time.time()
        try:
            try:
                self._transfer()
            except _Failed:
                self._abort()
                raise
            self.result["transfer_s"] = round(time.time() - t0, 2)
            with self.op.cond:
                since = len(self.op.events)
            self._commit()
            out = self._outcome(since)
            if out is None:
                self.result["result"] = "timeout"
                self.result["detail"] = "no outcome within %d s" % self.outcome_timeout
            elif out["kind"] == "ota_confirmed":
                self.result["result"] = "confirmed"
            else:
                self.result["result"] = "rolled_back"
                self.result["detail"] = out.get("reason", "")
        except _Skipped as e:
            self.result["result"] = "skipped"
            self.result["detail"] = str(e)
        except _Failed as e:
            self.result["result"] = "failed"
            self.result["detail"] = str(e)
        except TimeoutError as e:
            self.result["result"] = "timeout"
            self.result["detail"] = str(e)
        self.result["seconds"] = round(time.time() - t0, 2)
        return self.result


class _Failed(Exception):
    pass


class _Skipped(Exception):
    pass


def rollout(op, nodes, bd, parallel=4, progress=None, **kw):
    """Push `bd` to every node, `parallel` at a time; returns the per-node results in the order of `nodes`."""
    results = {}
    pending = list(nodes)
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if not pending:
                    return
                n = pending.pop(0)
            results[n] = NodePush(op, n, bd, progress=progress, **kw).run()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, min(parallel, len(nodes))))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [results[n] for n in nodes]


def versions(op):
    with op.cond:
        rows = []
        for n in sorted(set(op.status) | set(op.state)):
            st = op.status.get(n, {})
            rows.append({"node": n, "online": st.get("online"), "fw": st.get("fw") or op.state.get(n, {}).get("fw"),
                         "groups": st.get("groups")})
    return rows


def _table(rows, cols):
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) if rows else len(c) for c in cols]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    for r in rows:
        cells = (str(r.get(c, "") if r.get(c) is not None else "-").ljust(w) for c, w in zip(cols, widths))
        lines.append("  ".join(cells))
    return "\n".join(lines)


def _key_from(args):
    if args.key_file:
        try:
            with open(args.key_file) as f:
                return f.read().strip()
        except OSError as e:
            raise UsageError("--key-file %s: %s" % (args.key_file, e.strerror or e))
    return args.key or os.environ.get("OTA_KEY")


def build_parser():
    ap = argparse.ArgumentParser(prog="ota", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    b = sub.add_parser("build", help="build and sign a bundle")
    b.add_argument("--out", required=True)
    b.add_argument("--src", default=ROOT, help="source tree (default: this repo)")
    b.add_argument("--version", help="default: firmware/version.py of the source tree")
    b.add_argument("--format", choices=("py", "mpy"), default="mpy")
    b.add_argument("--march", default="xtensawin", help="mpy-cross -march (ESP32: xtensawin); '' for bytecode only")
    b.add_argument("--exclude", action="append", default=[], help="relative path to leave out (repeatable)")
    b.add_argument("--key", help="the fleet's update key that signs the manifest (or env OTA_KEY)")
    b.add_argument("--key-file", help="file holding the update key")
    for name, what in (("push", "roll a bundle out to nodes"), ("versions", "the version every node runs")):
        p = sub.add_parser(name, help=what, description="Broker settings as tools/fleet.py takes them: flags, "
                           "then FLEET_* environment, then the fleet.json config file. --key signs commands "
                           "(FLEET_KEY), as in fleet.py; the bundle carries its own manifest signature.")
        fleet.add_settings_args(p)
        p.add_argument("--cmd-key", dest="key", help=argparse.SUPPRESS)  # the name older scripts used for --key
        p.add_argument("--discover-s", type=float, default=1.5, help="time to collect retained births")
        p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.choices["push"]
    p.add_argument("--bundle", required=True)
    p.add_argument("--node", action="append", default=[])
    p.add_argument("--group")
    p.add_argument("--all", action="store_true")
    p.add_argument("--percent", type=float, help="canary: only this share of the selected nodes (stable choice)")
    p.add_argument("--force", action="store_true",
                   help="allow a downgrade, and reinstall on nodes already running the bundle's version")
    p.add_argument("--window", type=int, default=4, help="chunks in flight per node")
    p.add_argument("--chunk", type=int, default=otamod.MAX_CHUNK)
    p.add_argument("--parallel", type=int, default=4, help="nodes updated at once")
    p.add_argument("--max-refusals", type=int, default=3,
                   help="give up on a node that refuses the same file or position this many times (default 3)")
    p.add_argument("--outcome-timeout", type=float, default=600.0, help="wait this long for confirm/rollback")
    return ap


def _check_push_args(args):
    if not (args.node or args.group or args.all):
        raise UsageError("push needs --node, --group or --all")
    if args.percent is not None and not 0 < args.percent <= 100:
        raise UsageError("--percent must be in (0, 100], not %g" % args.percent)
    for flag, v, lo in (("--window", args.window, 1), ("--parallel", args.parallel, 1),
                        ("--max-refusals", args.max_refusals, 1), ("--chunk", args.chunk, 256)):
        if v < lo:
            raise UsageError("%s must be at least %d, not %d" % (flag, lo, v))
    if args.chunk > otamod.MAX_CHUNK:
        raise UsageError("--chunk must be at most %d (what a node accepts), not %d" % (otamod.MAX_CHUNK, args.chunk))


def open_bundle(path):
    """BundleData for `path`, or UsageError naming what is wrong (missing, not a bundle, tampered files)."""
    try:
        return BundleData(path)
    except FileNotFoundError as e:
        raise UsageError("bundle %s: %s not found" % (path, os.path.relpath(e.filename or path, path)))
    except (OSError, ValueError, KeyError, TypeError, Invalid) as e:
        raise UsageError("bundle %s: %s" % (path, e))


def _build(args):
    key = _key_from(args)
    if not key:
        raise UsageError("--key, --key-file or OTA_KEY is required")
    try:
        bundle = build_bundle(args.out, key, args.version, args.src, args.format, args.march or None,
                              tuple(args.exclude))
    except (OSError, ValueError, Invalid, RuntimeError) as e:
        raise UsageError("build: %s" % e)
    m = bundle["manifest"]
    print("bundle %s: version %s, %d files, %d bytes" % (args.out, m["version"], len(m["files"]),
                                                           sum(f["size"] for f in m["files"])))
    return EXIT_OK


def _push(op, args, bd):
    with op.cond:
        status = dict(op.status)
    nodes = select_nodes(status, args.node, args.group, args.all, args.percent, bd.manifest["version"])
    if not nodes:
        sys.stderr.write("ota: no node selected\n")
        return EXIT_FAILED
    sys.stderr.write("pushing %s (%d bytes) to %d node(s): %s\n" % (
        bd.manifest["version"], bd.total, len(nodes), ", ".join(nodes)))
    progress = None if args.json else (lambda s: sys.stderr.write(s + "\n"))
    results = rollout(op, nodes, bd, args.parallel, progress, force=args.force, window=args.window,
                      chunk=args.chunk, outcome_timeout=args.outcome_timeout, max_refusals=args.max_refusals)
    if args.json:
        print(json.dumps(results))
    else:
        cols = ("node", "from", "to", "result", "seconds", "transfer_s", "bytes", "resends", "resyncs", "detail")
        print(_table(results, cols))
    return EXIT_OK if all(r["result"] in ("confirmed", "skipped") for r in results) else EXIT_FAILED


def main(argv=None):
    ap = build_parser()
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:  # argparse has printed its usage line and error: --help is 0, a bad argument 2
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    op = None
    try:
        if args.what == "build":
            return _build(args)
        settings = fleet.load_settings(args)
        fleet.parse_broker_url(settings["broker"])
        bd = None
        if args.what == "push":
            _check_push_args(args)
            bd = open_bundle(args.bundle)  # a bad bundle is refused before anything is sent
        op = fleet.connect(settings, operator_class=_operator_class())
        time.sleep(args.discover_s)
        if args.what == "versions":
            rows = versions(op)
            print(json.dumps(rows) if args.json else _table(rows, ("node", "online", "fw", "groups")))
            return EXIT_OK
        return _push(op, args, bd)
    except UsageError as e:
        sys.stderr.write("ota: %s\n" % e)
        return EXIT_USAGE
    except Unreachable as e:
        sys.stderr.write("ota: %s\n" % e)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return EXIT_FAILED
    finally:
        if op is not None:
            op.close()


if __name__ == "__main__":
    sys.exit(main())
