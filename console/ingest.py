"""From the broker to the console: drains the Operator's message log, updates the live fleet, writes history.

The Operator (tools/operator_client.py) appends every message to `op.raw` under its lock; this thread takes the
whole log at once, empties it (a console runs for months: nothing may grow without bound) and handles the batch
outside the lock. Database writes of one batch go in one transaction, which is what makes ingest fast.

What is stored: every status message (online/offline), every state change, every event (alarms also open and close
rows in `alarms` — the retained state's `faults` list does too, so an alarm raised while the console was down is
still seen), telemetry raw and as hourly sums, and metered energy per month. Replies go to the Commander.
Each post's config (for its site, lamp watts and the post page) is asked for with `get config` at its birth.
"""

import collections
import json
import threading
import time

from console import energy

_CONFIG_ASKS_PER_S = 20  # a city's worth of births after a broker restart must not flood it with get config


class Ingest:
    def __init__(self, op, fleet_state, store, commander, known=None, retention=None):
        self.op = op
        self.fleet = fleet_state
        self.store = store
        self.commander = commander
        self.prefix = op.prefix
        self.nights = energy.Nights()
        self.counters = {}  # node → (energy counter wh, node t) of its last telemetry
        self.retention = retention or {"raw_days": 7, "hourly_days": 400, "log_days": 90}
        self.stats = {"messages": 0, "rows": 0, "batches": 0, "bad": 0}
        self._config_wanted = collections.deque()  # posts to ask for their config, in order ...
        self._config_queued = set()  # ... and the same as a set, so a post waits in the queue once
        self._stop = threading.Event()
        self._last_prune = 0.0
        for node, row in (known or {}).items():
            self._restore(node, row)
        self._thread = threading.Thread(target=self._run, name="console ingest", daemon=True)
        self._asker = threading.Thread(target=self._ask_configs, name="console config asker", daemon=True)

    def start(self):
        self._thread.start()
        self._asker.start()
        return self

    def _restore(self, node, row):
        """A post as the database remembers it, before the broker says anything."""
        with self.fleet.cond:
            p = self.fleet.post(node)
            p.lat, p.lon, p.groups, p.fw, p.config = row["lat"], row["lon"], row["groups"], row["fw"], row["config"]
            p.energy_wh = row.get("energy_counter_wh")
            self.fleet.changed(node)
        if row.get("energy_counter_t") is not None:
            self.counters[node] = (row["energy_counter_wh"], row["energy_counter_t"])

    # --- the loop ---

    def _run(self):
        while not self._stop.is_set():
            with self.op.cond:
                if not self.op.raw:
                    self.op.cond.wait(0.5)
                batch = self.op.raw[:]
                del self.op.raw[:]
                # The Operator's other indexes are for short CLI runs; here they would only grow.
                self.op.events.clear()
                self.op.replies.clear()
            if batch:
                self.handle(batch, time.time())
            self._maybe_prune()

    def handle(self, batch, rx):
        """Handle [(topic, payload, retained)]: live state first (pages see it at once), then one transaction."""
        rows = []
        changed = set()
        for topic, payload, retained in batch:
            self.stats["messages"] += 1
            parts = topic[len(self.prefix) + 1:].split("/") if topic.startswith(self.prefix + "/") else []
            if len(parts) != 2:
                continue
            node, kind = parts
            try:
                doc = json.loads(payload)
            except ValueError:
                self.stats["bad"] += 1
                continue
            if not isinstance(doc, dict):
                self.stats["bad"] += 1
                continue
            handler = getattr(self, "_on_" + kind, None)
            if handler is None:
                continue
            if handler(node, doc, rx, retained, rows):
                changed.add(node)
        if changed:
            with self.fleet.cond:
                for n in changed:
                    self.fleet.changed(n)
        if rows:
            try:
                self.store.many(rows)
            except Exception as e:  # a database error must not stop the live view; it is counted and shown
                self.stats["db_errors"] = self.stats.get("db_errors", 0) + 1
                self.stats["last_db_error"] = "%s: %s" % (type(e).__name__, e)
                return
            self.stats["rows"] += len(rows)
            self.stats["batches"] += 1

    # --- one handler per topic kind: update the post, add statements, say whether the map changed ---

    def _on_status(self, node, doc, rx, retained, rows):
        with self.fleet.cond:
            p = self.fleet.post(node)
            before = p.status
            p.status = doc
            if doc.get("online"):
                p.groups = [g for g in doc.get("groups") or [] if isinstance(g, str)]
                p.fw = doc.get("fw")
            if not retained:
                p.heard = rx
        if before is not None and before == doc:
            return False
        if doc.get("online"):
            rows.append(self.store.w_node_seen(node, rx, p.groups, p.fw))
            self._want_config(node)  # at every birth: a post that restarted may run another config
        else:
            rows.append(self.store.w_node_seen(node, rx))
        rows.append(self.store.w_status(node, rx, doc))
        return True

    def _on_state(self, node, doc, rx, retained, rows):
        with self.fleet.cond:
            p = self.fleet.post(node)
            before = p.state
            p.state = doc
            if isinstance(doc.get("energy_wh"), (int, float)):
                p.energy_wh = doc["energy_wh"]
            if not retained:
                p.heard = rx
        if before is not None and _same_state(before, doc):
            return False
        rows.append(self.store.w_node_seen(node, rx))
        rows.append(self.store.w_state(node, rx, doc))
        new = sorted(set(doc.get("faults") or []))
        for name in new:  # raising an alarm that is already open does nothing
            rows.append(self.store.w_alarm_raise(node, name, rx, doc.get("t"), None))
        if before is None:
            # The first state this run is the whole truth: alarms the database holds open but the post no longer
            # lists were cleared while the console was away.
            rows.append(self.store.w_alarm_close_others(node, new, rx))
        else:
            for name in sorted(set(before.get("faults") or []) - set(new)):
                rows.append(self.store.w_alarm_clear(node, name, rx, doc.get("t")))
        with self.fleet.cond:
            self.fleet.changed("!alarms")
        return True

    def _on_event(self, node, doc, rx, retained, rows):
        rows.append(self.store.w_event(node, rx, doc))
        if doc.get("kind") == "alarm" and isinstance(doc.get("name"), str):
            if doc.get("active"):
                rows.append(self.store.w_alarm_raise(node, doc["name"], rx, doc.get("t"), doc.get("detail")))
                if doc["name"] == "supply_loss":  # momentary by contract: raised and cleared at once
                    rows.append(self.store.w_alarm_clear(node, doc["name"], rx, doc.get("t")))
            else:
                rows.append(self.store.w_alarm_clear(node, doc["name"], rx, doc.get("t")))
            with self.fleet.cond:
                self.fleet.changed("!alarms")
        elif doc.get("kind") in ("config_rollback", "ota_confirmed", "ota_rollback"):
            self._want_config(node)
        with self.fleet.cond:
            self.fleet.post(node).heard = rx
        return False

    def _on_tele(self, node, doc, rx, retained, rows):
        with self.fleet.cond:
            p = self.fleet.post(node)
            p.tele = doc
            p.heard = rx
            config = p.config
            counter = doc.get("energy_wh")
            if isinstance(counter, (int, float)):
                p.energy_wh = counter
        rows.extend(self.store.w_tele(node, rx, doc))
        t = doc.get("t")
        if isinstance(counter, (int, float)) and isinstance(t, (int, float)):
            got = energy.step(self.nights, self.counters.get(node), counter, int(t), config)
            self.counters[node] = (counter, int(t))
            if got is not None:
                rows.extend(self.store.w_energy(node, got[0], got[1], got[2], counter, int(t)))
        return False

    def _on_reply(self, node, doc, rx, retained, rows):
        self.commander.on_reply(node, doc, rx)
        return False

    # --- configs ---

    def _want_config(self, node):
        with self.fleet.cond:  # the ingest and the web threads (after a push) both add
            if node not in self._config_queued:
                self._config_queued.add(node)
                self._config_wanted.append(node)

    def refresh_config(self, nodes):
        """Ask these posts for their config again (after a program or config push)."""
        for n in nodes:
            self._want_config(n)

    def _ask_configs(self):
        while not self._stop.wait(1.0 / _CONFIG_ASKS_PER_S):
            with self.fleet.cond:
                if not self._config_wanted:
                    continue
                node = self._config_wanted.popleft()
                self._config_queued.discard(node)
            try:
                self.commander.send("console", ("node", [node]), "get", {"what": "config"}, internal=True,
                                    on_done=self._got_config)
            except ValueError:
                continue  # cannot sign for it: the post page shows no config

    def _got_config(self, t):
        for node, r in t.results.items():
            if r["result"] != "ok" or not isinstance((r.get("reply") or {}).get("config"), dict):
                continue  # asked again at its next birth
            cfg = r["reply"]["config"]
            site = cfg.get("site") or {}
            lat, lon = site.get("lat"), site.get("lon")
            with self.fleet.cond:
                p = self.fleet.post(node)
                p.config = cfg
                if isinstance(lat, (int, float)) and isinstance(lon, (int, float)):
                    p.lat, p.lon = float(lat), float(lon)
                self.fleet.changed(node)
            try:
                self.store.save_config(node, cfg, time.time(), p.lat, p.lon)
            except Exception as e:  # same as ingest: keep the live view, count the error
                self.stats["last_db_error"] = "%s: %s" % (type(e).__name__, e)

    # --- retention ---

    def _maybe_prune(self):
        now = time.time()
        if now - self._last_prune < 3600:
            return
        self._last_prune = now
        r = self.retention
        try:
            self.store.prune(now, r["raw_days"], r["hourly_days"], r["log_days"])
        except Exception as e:
            self.stats["last_db_error"] = "%s: %s" % (type(e).__name__, e)

    def stop(self):
        self._stop.set()
        self._thread.join(5)


def _same_state(a, b):
    """Whether two states differ only in their time stamp or meter readings (not worth a history row)."""
    skip = ("t", "energy_wh", "burn_h")
    return {k: v for k, v in a.items() if k not in skip} == {k: v for k, v in b.items() if k not in skip}
