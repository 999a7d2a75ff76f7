"""The console's repository: every read and write of history goes through `Store`, on SQLite or PostgreSQL.

    store = Store.open("console.db")                       # a file (SQLite, stdlib)
    store = Store.open("postgresql://user@127.0.0.1:5432/db")   # PostgreSQL (psycopg 3)

SQL is written once with `?` placeholders; the PostgreSQL side rewrites them to `%s`. The two engines differ in
few places (auto-numbered keys, doubles, GREATEST vs MAX): those are the `Dialect`'s. One connection, guarded by a
lock: the ingest thread writes in batches (one transaction each), web threads read between them.
"""

import json
import threading
import time

from console.migrations import MIGRATIONS

DAY = 86400


class Dialect:
    def __init__(self, name):
        self.name = name
        if name == "sqlite":
            self.id = "id INTEGER PRIMARY KEY AUTOINCREMENT"
            self.real = "REAL"
            self.greatest = "MAX"
        else:
            self.id = "id BIGSERIAL PRIMARY KEY"
            self.real = "DOUBLE PRECISION"
            self.greatest = "GREATEST"

    def ddl(self, text):
        return text.replace("{id}", self.id).replace("{real}", self.real)

    def sql(self, text):
        text = text.replace("{greatest}", self.greatest)
        return text if self.name == "sqlite" else text.replace("?", "%s")


def _connect(url):
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        try:
            import psycopg
        except ImportError:
            raise ValueError("--db %s needs psycopg 3 (pip install -r requirements-dev.txt)" % url.split("@")[-1])
        try:
            return psycopg.connect(url, autocommit=False), Dialect("postgresql")
        except psycopg.OperationalError as e:
            raise ValueError("--db %s: cannot connect (%s)" % (url.split("@")[-1], str(e).strip().split("\n")[0]))
    import sqlite3

    path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else url
    try:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    except sqlite3.OperationalError as e:
        raise ValueError("--db %s: %s" % (path, e))
    conn.execute("PRAGMA journal_mode=WAL")  # readers do not wait for the ingest's transaction
    conn.execute("PRAGMA synchronous=NORMAL")  # history, not money: a power cut may lose the last batch
    return conn, Dialect("sqlite")


class Store:
    def __init__(self, conn, dialect):
        self.conn = conn
        self.d = dialect
        self.lock = threading.RLock()

    @classmethod
    def open(cls, url):
        conn, dialect = _connect(url)
        s = cls(conn, dialect)
        s.migrate()
        return s

    # --- plumbing ---

    def _begin(self):
        if self.d.name == "sqlite":
            self.conn.execute("BEGIN")

    def _commit(self):
        self.conn.commit()

    def run(self, sql, args=()):
        """One statement in its own transaction."""
        with self.lock:
            self._begin()
            try:
                self.conn.execute(self.d.sql(sql), args)
                self._commit()
            except Exception:
                self.conn.rollback()
                raise

    def many(self, statements):
        """[(sql, args)] in one transaction: the ingest's batch. On PostgreSQL in pipeline mode: the statements go
        out without waiting for each answer (one round trip per batch instead of one per row)."""
        with self.lock:
            self._begin()
            try:
                if self.d.name == "sqlite":
                    for sql, args in statements:
                        self.conn.execute(self.d.sql(sql), args)
                else:
                    with self.conn.pipeline():
                        for sql, args in statements:
                            self.conn.execute(self.d.sql(sql), args)
                self._commit()
            except Exception:
                self.conn.rollback()
                raise

    def query(self, sql, args=()):
        with self.lock:
            cur = self.conn.execute(self.d.sql(sql), args)
            rows = cur.fetchall()
            if self.d.name != "sqlite":
                self.conn.commit()  # end the implicit read transaction so later reads see new rows
            return rows

    def one(self, sql, args=()):
        rows = self.query(sql, args)
        return rows[0] if rows else None

    def version(self):
        with self.lock:
            self._begin()
            self.conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            self._commit()
        row = self.one("SELECT MAX(version) FROM schema_version")
        return row[0] or 0 if row else 0

    def migrate(self):
        """Run the migrations this database has not run yet, each in its own transaction."""
        done = self.version()
        for number, statements in enumerate(MIGRATIONS, 1):
            if number <= done:
                continue
            self.many([(self.d.ddl(s), ()) for s in statements] +
                      [("INSERT INTO schema_version (version) VALUES (?)", (number,))])
        return len(MIGRATIONS)

    def close(self):
        with self.lock:
            self.conn.close()

    def size_bytes(self):
        """What the history takes on disk (SQLite file pages, or PostgreSQL's database size)."""
        if self.d.name == "sqlite":
            pages = self.one("PRAGMA page_count")[0]
            return pages * self.one("PRAGMA page_size")[0]
        return self.one("SELECT pg_database_size(current_database())")[0]

    # --- writes (as statements, so the ingest can batch them) ---

    @staticmethod
    def w_node_seen(node, rx, groups=None, fw=None):
        if groups is None:
            return ("INSERT INTO nodes (id, first_rx, last_rx) VALUES (?, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET last_rx = excluded.last_rx", (node, int(rx), int(rx)))
        return ("INSERT INTO nodes (id, first_rx, last_rx, groups_json, fw) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET last_rx = excluded.last_rx, groups_json = excluded.groups_json, "
                "fw = excluded.fw", (node, int(rx), int(rx), json.dumps(groups), fw))

    @staticmethod
    def w_status(node, rx, doc):
        return ("INSERT INTO status_log (node, rx, online, reason, fw, doc) VALUES (?, ?, ?, ?, ?, ?)",
                (node, rx, 1 if doc.get("online") else 0, doc.get("reason"), doc.get("fw"), json.dumps(doc)))

    @staticmethod
    def w_state(node, rx, doc):
        return ("INSERT INTO state_log (node, rx, t, level, reason, faults, doc) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (node, rx, _int(doc.get("t")), _num(doc.get("level")), doc.get("reason"),
                 json.dumps(doc.get("faults") or []), json.dumps(doc)))

    @staticmethod
    def w_event(node, rx, doc):
        return ("INSERT INTO events (node, rx, t, kind, doc) VALUES (?, ?, ?, ?, ?)",
                (node, rx, _int(doc.get("t")), str(doc.get("kind")), json.dumps(doc)))

    @staticmethod
    def w_alarm_raise(node, name, rx, t, detail):
        # Only when no alarm of that name is open on the node: the event and the retained state both say so.
        return ("INSERT INTO alarms (node, name, raised_rx, raised_t, detail) SELECT ?, ?, ?, ?, ? WHERE NOT EXISTS "
                "(SELECT 1 FROM alarms WHERE node = ? AND name = ? AND cleared_rx IS NULL)",
                (node, name, rx, _int(t), json.dumps(detail) if detail is not None else None, node, name))

    @staticmethod
    def w_alarm_clear(node, name, rx, t):
        return ("UPDATE alarms SET cleared_rx = ?, cleared_t = ? WHERE node = ? AND name = ? AND cleared_rx IS NULL",
                (rx, _int(t), node, name))

    @staticmethod
    def w_alarm_close_others(node, active, rx):
        keep = " AND name NOT IN (%s)" % ",".join("?" * len(active)) if active else ""
        return ("UPDATE alarms SET cleared_rx = ? WHERE node = ? AND cleared_rx IS NULL" + keep,
                (rx, node) + tuple(active))

    def w_tele(self, node, rx, doc):
        t = _int(doc.get("t"))
        t = int(rx) if t is None else t
        lux, w = _num(doc.get("lux")), _num(doc.get("w"))
        level = _num(doc.get("level")) or 0.0
        raw = ("INSERT INTO tele_raw (node, rx, t, level, lux, v, a, w, pf, energy_wh, rssi) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (node, rx, t, level, lux, _num(doc.get("v")), _num(doc.get("a")), w, _num(doc.get("pf")),
                _num(doc.get("energy_wh")), _int(doc.get("rssi"))))
        hourly = ("INSERT INTO tele_hourly (node, hour, n, level_sum, lux_sum, lux_n, w_sum, w_n, w_max) "
                  "VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?) ON CONFLICT (node, hour) DO UPDATE SET "
                  "n = tele_hourly.n + 1, level_sum = tele_hourly.level_sum + excluded.level_sum, "
                  "lux_sum = tele_hourly.lux_sum + excluded.lux_sum, lux_n = tele_hourly.lux_n + excluded.lux_n, "
                  "w_sum = tele_hourly.w_sum + excluded.w_sum, w_n = tele_hourly.w_n + excluded.w_n, "
                  "w_max = {greatest}(COALESCE(tele_hourly.w_max, excluded.w_max), "
                  "COALESCE(excluded.w_max, tele_hourly.w_max))",
                  (node, t - t % 3600, level, lux or 0.0, 0 if lux is None else 1, w or 0.0, 0 if w is None else 1,
                   w))
        return [raw, hourly]

    @staticmethod
    def w_energy(node, month, wh, baseline_wh, counter_wh, counter_t):
        return [("INSERT INTO energy_monthly (node, month, wh, baseline_wh) VALUES (?, ?, ?, ?) "
                 "ON CONFLICT (node, month) DO UPDATE SET wh = energy_monthly.wh + excluded.wh, "
                 "baseline_wh = energy_monthly.baseline_wh + excluded.baseline_wh", (node, month, wh, baseline_wh)),
                ("UPDATE nodes SET energy_counter_wh = ?, energy_counter_t = ? WHERE id = ?",
                 (counter_wh, counter_t, node))]

    def save_config(self, node, config, rx, lat, lon):
        self.run("UPDATE nodes SET config_json = ?, config_rx = ?, lat = ?, lon = ? WHERE id = ?",
                 (json.dumps(config), int(rx), lat, lon, node))

    def seed_node(self, node, rx, groups, lat, lon, config=None):
        """A node row as a `get config` would leave it (used by the benchmark to stand in for 5,000 replies)."""
        self.many([self.w_node_seen(node, rx, groups, None),
                   ("UPDATE nodes SET lat = ?, lon = ?, config_json = ? WHERE id = ?",
                    (lat, lon, json.dumps(config) if config is not None else None, node))])

    # --- commands ---

    def save_command(self, cid, rx, user, target_kind, target, cmd, doc):
        self.run("INSERT INTO commands (id, rx, username, target_kind, target, cmd, doc) VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (cid, rx, user, target_kind, target, cmd, json.dumps(doc)))

    def save_result(self, cid, node, rx, result, reply):
        self.run("INSERT INTO command_results (command_id, node, rx, result, reply) VALUES (?, ?, ?, ?, ?) "
                 "ON CONFLICT (command_id, node) DO UPDATE SET rx = excluded.rx, result = excluded.result, "
                 "reply = excluded.reply", (cid, node, rx, result, json.dumps(reply) if reply is not None else None))

    def command_results(self, cid):
        return {r[0]: {"result": r[1], "reply": json.loads(r[2]) if r[2] else None}
                for r in self.query("SELECT node, result, reply FROM command_results WHERE command_id = ?", (cid,))}

    def recent_commands(self, node=None, limit=20):
        if node is None:
            rows = self.query("SELECT id, rx, username, target_kind, target, cmd FROM commands ORDER BY rx DESC "
                              "LIMIT ?", (limit,))
        else:
            rows = self.query("SELECT c.id, c.rx, c.username, c.target_kind, c.target, c.cmd FROM commands c "
                              "JOIN command_results r ON r.command_id = c.id WHERE r.node = ? ORDER BY c.rx DESC "
                              "LIMIT ?", (node, limit))
        return [{"id": r[0], "rx": r[1], "user": r[2], "target_kind": r[3], "target": r[4], "cmd": r[5]}
                for r in rows]

    # --- reads for the pages ---

    def nodes(self):
        """{id: {lat, lon, groups, fw, config, energy_counter_wh, energy_counter_t}} as last stored."""
        out = {}
        for r in self.query("SELECT id, lat, lon, groups_json, fw, config_json, energy_counter_wh, energy_counter_t "
                            "FROM nodes"):
            out[r[0]] = {"lat": r[1], "lon": r[2], "groups": json.loads(r[3] or "[]"), "fw": r[4],
                         "config": json.loads(r[5]) if r[5] else None, "energy_counter_wh": r[6],
                         "energy_counter_t": r[7]}
        return out

    def open_alarms(self):
        rows = self.query("SELECT id, node, name, raised_rx, raised_t, detail, acked_by, acked_rx FROM alarms "
                          "WHERE cleared_rx IS NULL ORDER BY raised_rx DESC")
        return [_alarm(r) for r in rows]

    def alarm_history(self, limit=100, node=None):
        sql = ("SELECT id, node, name, raised_rx, raised_t, detail, acked_by, acked_rx, cleared_rx, cleared_t "
               "FROM alarms %s ORDER BY raised_rx DESC LIMIT ?" % ("WHERE node = ?" if node else ""))
        rows = self.query(sql, (node, limit) if node else (limit,))
        out = []
        for r in rows:
            a = _alarm(r[:8])
            a["cleared_rx"], a["cleared_t"] = r[8], r[9]
            out.append(a)
        return out

    def ack_alarm(self, alarm_id, user, rx):
        self.run("UPDATE alarms SET acked_by = ?, acked_rx = ? WHERE id = ? AND acked_by IS NULL", (user, rx, alarm_id))

    def events(self, node, limit=50):
        rows = self.query("SELECT rx, t, kind, doc FROM events WHERE node = ? ORDER BY rx DESC LIMIT ?", (node, limit))
        return [{"rx": r[0], "t": r[1], "kind": r[2], "doc": json.loads(r[3])} for r in rows]

    def state_history(self, node, limit=50):
        rows = self.query("SELECT rx, t, level, reason, faults FROM state_log WHERE node = ? ORDER BY rx DESC LIMIT ?",
                          (node, limit))
        return [{"rx": r[0], "t": r[1], "level": r[2], "reason": r[3], "faults": json.loads(r[4])} for r in rows]

    def status_history(self, node, limit=20):
        rows = self.query("SELECT rx, online, reason, fw FROM status_log WHERE node = ? ORDER BY rx DESC LIMIT ?",
                          (node, limit))
        return [{"rx": r[0], "online": bool(r[1]), "reason": r[2], "fw": r[3]} for r in rows]

    def latest_tele_t(self, node):
        row = self.one("SELECT MAX(t) FROM tele_raw WHERE node = ?", (node,))
        if row and row[0] is not None:
            return row[0]
        row = self.one("SELECT MAX(hour) FROM tele_hourly WHERE node = ?", (node,))
        return row[0] + 3599 if row and row[0] is not None else None

    def tele_series(self, node, t_from, t_to, hourly):
        """[(t, level, w, lux)] between two node times: raw samples, or hourly means."""
        if hourly:
            rows = self.query("SELECT hour, level_sum / n, CASE WHEN w_n > 0 THEN w_sum / w_n END, "
                              "CASE WHEN lux_n > 0 THEN lux_sum / lux_n END FROM tele_hourly "
                              "WHERE node = ? AND hour >= ? AND hour <= ? ORDER BY hour", (node, t_from, t_to))
        else:
            rows = self.query("SELECT t, level, w, lux FROM tele_raw WHERE node = ? AND t >= ? AND t <= ? ORDER BY t",
                              (node, t_from, t_to))
        return [tuple(r) for r in rows]

    def energy_by_month(self):
        """[(node, month, wh, baseline_wh)]."""
        return [tuple(r) for r in self.query("SELECT node, month, wh, baseline_wh FROM energy_monthly "
                                             "ORDER BY month, node")]

    def counts(self):
        out = {}
        for table in ("status_log", "state_log", "alarms", "events", "commands", "command_results", "tele_raw",
                      "tele_hourly", "energy_monthly"):
            out[table] = self.one("SELECT COUNT(*) FROM %s" % table)[0]
        return out

    # --- retention ---

    def prune(self, now, raw_days, hourly_days, log_days):
        """Drop raw telemetry older than raw_days, hourly aggregates older than hourly_days, and status/state/
        event logs older than log_days. Alarms and commands are kept (they are few and they are the audit)."""
        self.many([("DELETE FROM tele_raw WHERE rx < ?", (now - raw_days * DAY,)),
                   ("DELETE FROM tele_hourly WHERE hour < ?", (int(now - hourly_days * DAY),)),
                   ("DELETE FROM status_log WHERE rx < ?", (now - log_days * DAY,)),
                   ("DELETE FROM state_log WHERE rx < ?", (now - log_days * DAY,)),
                   ("DELETE FROM events WHERE rx < ?", (now - log_days * DAY,)),
                   ("DELETE FROM sessions WHERE last_rx < ?", (now - 7 * DAY,))])

    # --- users and sessions ---

    def add_user(self, name, pw_hash, role):
        self.run("INSERT INTO users (name, pw_hash, role, created) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE "
                 "SET pw_hash = excluded.pw_hash, role = excluded.role", (name, pw_hash, role, time.time()))

    def user(self, name):
        r = self.one("SELECT name, pw_hash, role FROM users WHERE name = ?", (name,))
        return None if r is None else {"name": r[0], "pw_hash": r[1], "role": r[2]}

    def user_count(self):
        return self.one("SELECT COUNT(*) FROM users")[0]

    def add_session(self, token, user, csrf, now):
        self.run("INSERT INTO sessions (token, username, csrf, created, last_rx) VALUES (?, ?, ?, ?, ?)",
                 (token, user, csrf, now, now))

    def session(self, token):
        r = self.one("SELECT s.username, s.csrf, s.last_rx, u.role FROM sessions s JOIN users u ON u.name = s.username "
                     "WHERE s.token = ?", (token,))
        return None if r is None else {"user": r[0], "csrf": r[1], "last_rx": r[2], "role": r[3]}

    def touch_session(self, token, now):
        self.run("UPDATE sessions SET last_rx = ? WHERE token = ?", (now, token))

    def drop_session(self, token):
        self.run("DELETE FROM sessions WHERE token = ?", (token,))


def _alarm(r):
    return {"id": r[0], "node": r[1], "name": r[2], "raised_rx": r[3], "raised_t": r[4],
            "detail": json.loads(r[5]) if r[5] else None, "acked_by": r[6], "acked_rx": r[7]}


def _num(v):
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _int(v):
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
