"""Commands from the console to posts: validated with the node's own schema, sent through the fleet's Operator
(so broker settings, TLS, credentials and signing are tools/fleet.py's), tracked per node until every target
answered, timed out or is known offline, and recorded with who sent them.

A group command is one message on the group topic; each member answers on its own reply topic, so the tracker
expects the members the console knows from their birth messages and also accepts members it did not know of.
"""

import threading
import time

import fleet  # tools/fleet.py: the CLI's validation and topic rules, shared so both refuse the same input

DEFAULT_TIMEOUT_S = 10.0


class Tracked:
    """One command in flight: who it expects, what came back."""

    def __init__(self, cid, doc, target, expected, offline, user, deadline, on_done=None, internal=False):
        self.id = cid
        self.doc = doc
        self.target = target  # ("node", [ids]) / ("group", g) / ("all", None)
        self.expected = set(expected)
        self.offline = set(offline)
        self.user = user
        self.deadline = deadline
        self.on_done = on_done
        self.internal = internal
        self.results = {n: {"result": "offline"} for n in self.offline}
        self.done = False

    def view(self):
        pending = sorted(self.expected - set(self.results))
        return {"id": self.id, "cmd": self.doc["cmd"], "target": {"kind": self.target[0], "name": self.target[1]},
                "done": self.done, "pending": pending, "results": dict(sorted(self.results.items())),
                "counts": _count(self.results, pending)}


def _count(results, pending):
    out = {"ok": 0, "error": 0, "timeout": 0, "offline": 0, "pending": len(pending)}
    for r in results.values():
        out[r["result"]] = out.get(r["result"], 0) + 1
    return out


class Commander:
    def __init__(self, op, fleet_state, store, timeout=DEFAULT_TIMEOUT_S):
        self.op = op
        self.fleet = fleet_state
        self.store = store
        self.timeout = timeout
        self.lock = threading.Lock()
        self.tracked = {}  # id → Tracked, kept a while after done so pages can read the outcome
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="console commands", daemon=True)
        self._reaper.start()

    def send(self, user, target, cmd, fields, timeout=None, on_done=None, internal=False):
        """Validate and send; the Tracked command. ValueError (nothing sent) when the command is invalid."""
        try:
            doc = fleet.checked(cmd, fields)
        except fleet.UsageError as e:
            raise ValueError(str(e))
        kind, what = target
        if kind == "node":
            expected, offline = [], []
            for n in what:
                p = self.fleet.get(n)
                (offline if p is not None and p.get("online") is False else expected).append(n)
        else:
            expected, offline = self.fleet.members("all" if kind == "all" else what)
        now = time.time()
        t = Tracked(doc["id"], doc, target, expected, offline, user, now + (timeout or self.timeout), on_done,
                    internal)
        with self.lock:
            self.tracked[t.id] = t
        if not internal:
            self.store.save_command(t.id, now, user, kind, what if kind != "node" else ",".join(what), cmd, doc)
            for n in offline:
                self.store.save_result(t.id, n, now, "offline", None)
        fields_out = {k: v for k, v in doc.items() if k != "cmd"}
        try:
            if kind == "node":
                for n in expected:
                    topic, dest = fleet.topic_and_dest(self.op.prefix, target, n)
                    self.op.send(dest, cmd, topic=topic, **fields_out)
            else:
                topic, dest = fleet.topic_and_dest(self.op.prefix, target)
                self.op.send(dest, cmd, topic=topic, **fields_out)
        except ValueError as e:  # the signer has no key for this target
            with self.lock:
                self.tracked.pop(t.id, None)
            raise ValueError("cannot sign: %s" % e)
        if not expected and kind == "node":
            self._finish(t)
        return t

    def on_reply(self, node, doc, rx):
        """A reply arrived (called by the ingest); True when it belonged to a tracked command."""
        cid = doc.get("id")
        with self.lock:
            t = self.tracked.get(cid)
            if t is None or node in t.results and t.results[node]["result"] != "timeout":
                return t is not None
            r = {"result": "ok" if doc.get("ok") else "error", "reply": doc}
            if not doc.get("ok"):
                r["error"] = doc.get("error")
            t.results[node] = r
            t.expected.add(node)
            finished = not t.done and t.expected <= set(t.results)
        if not t.internal:
            self.store.save_result(cid, node, rx, r["result"], doc)
        if finished:
            self._finish(t)
        self._notify()
        return True

    def _finish(self, t):
        with self.lock:
            if t.done:
                return
            t.done = True
            late = sorted(t.expected - set(t.results))
            for n in late:
                t.results[n] = {"result": "timeout"}
        if not t.internal:
            now = time.time()
            for n in late:
                self.store.save_result(t.id, n, now, "timeout", None)
        if t.on_done is not None:
            t.on_done(t)
        self._notify()

    def _notify(self):
        with self.fleet.cond:
            self.fleet.changed("!commands")

    def get(self, cid):
        """The command's progress as a dict: from memory while recent, else from the database."""
        with self.lock:
            t = self.tracked.get(cid)
            if t is not None:
                return t.view()
        results = self.store.command_results(cid)
        if not results:
            return None
        return {"id": cid, "done": True, "pending": [], "results": results, "counts": _count(results, [])}

    def _reap(self):
        while not self._stop.wait(0.2):
            now = time.time()
            with self.lock:
                due = [t for t in self.tracked.values() if not t.done and now >= t.deadline]
                old = [cid for cid, t in self.tracked.items() if t.done and now - t.deadline > 600]
                for cid in old:
                    del self.tracked[cid]
            for t in due:
                self._finish(t)

    def close(self):
        self._stop.set()

