"""The console's figures: ingest rate, database growth per day, and page load with a big fleet.

    .venv/bin/python tools/console_bench.py [--posts 5000] [--flood-s 10] [--sim-nodes 20] [--sim-s 30]
                                            [--db sqlite|postgresql|both] [--json]

Each figure beside its baseline, measured in the same run:
* sim — a virtual city (tools/fleet_sim.py: real firmware under MicroPython, sim drivers) of --sim-nodes posts at
  30x for --sim-s seconds: what a real post sends, as DB rows per post per hour of its own clock. This is the mix
  (telemetry, state changes, events, births) the growth figure is scaled from.
* ingest — a publisher floods the broker with telemetry (payloads copied from the virtual posts) for --posts
  distinct post ids for --flood-s seconds; the console's ingest (Operator → live fleet → one transaction per batch)
  keeps up or falls behind. Figure: DB rows written per second, sustained over the window, and telemetry messages
  per second; baseline: the messages per second the publisher got into the broker (the ceiling ingest can reach
  on this machine). A city of 50,000 posts at the default telemetry period (300 s) sends 167 messages/s.
* growth — one day of --day-posts posts fed through the real Ingest (a birth, telemetry every default period of
  firmware/config.py report.telemetry_s, the default program's four state changes, an alarm raised and cleared on
  one post in fifty): the file (SQLite) or database (PostgreSQL, after VACUUM FULL) size grown, scaled to 1,000
  posts. Bytes per telemetry row of the flood are printed beside it.
* pages — --posts posts in the live fleet (retained birth + state published for each; sites stored as `get
  config` replies would leave them), then each page served to headless Chromium: time to the browser's load
  event, and the server's own time and bytes for the HTML. Baseline: the same pages with 10 posts.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (ROOT, HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import paho.mqtt.client as mqtt  # noqa: E402

import fleet  # noqa: E402
import fleet_sim  # noqa: E402
from broker import Broker  # noqa: E402
from console import pgcluster  # noqa: E402
from console.app import App  # noqa: E402
from console.store import Store  # noqa: E402
from firmware import config as configmod  # noqa: E402

PREFIX = "city/lights"
DEFAULT_TELE_S = configmod.defaults()["report"]["telemetry_s"]
PASSWORD = "bench-password"


def _settings(b):
    return {"broker": "mqtt://%s:%d" % (b.host, b.port), "prefix": PREFIX, "user": None, "password": None,
            "ca": None, "key": None, "group_key": None}


def _console(b, url):
    store = Store.open(url)
    app = App(fleet.connect(_settings(b), client_id="console-bench-%d" % os.getpid()), store)
    if store.user("bench") is None:
        app.auth.add_user("bench", PASSWORD, "viewer")
    return app.start("127.0.0.1", 0)


def _close(app):
    app.close()
    app.op.close()
    app.store.close()


def _publisher(b):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-pub-%d" % os.getpid(), protocol=mqtt.MQTTv311)
    c.max_queued_messages_set(0)
    c.connect(b.host, b.port, 60)
    c.loop_start()
    return c


def measure_sim(b, nodes, seconds, workdir):
    """Rows per post per node-hour from real virtual posts, and a sample telemetry payload."""
    app = _console(b, os.path.join(workdir, "sim.db"))
    sim = fleet_sim.Fleet(b.host, b.port, os.path.join(workdir, "sim"), speed=30.0)
    try:
        sim.grow(nodes)
        deadline = time.time() + 60 + nodes
        while time.time() < deadline and (app.fleet.counts()["total"] < nodes or app.fleet.counts()["unknown"]):
            time.sleep(0.2)
        time.sleep(3.0)  # births, retained states and first telemetry: the boot burst is not a post's hour
        before = app.store.counts()
        t0 = time.time()
        while time.time() - t0 < seconds:
            time.sleep(0.5)
        elapsed = time.time() - t0
        counts = {k: v - before[k] for k, v in app.store.counts().items()}
        sample = None
        for p in app.fleet.snapshot():
            got = app.fleet.get(p["id"])
            if got and got["tele"]:
                sample = got["tele"]
                break
        on_map = sum(1 for p in app.fleet.snapshot() if p["lat"] is not None)
    finally:
        sim.stop()
        _close(app)
    node_hours = nodes * elapsed * 30.0 / 3600.0
    per = {k: round(v / node_hours, 2) for k, v in counts.items()}
    return {"nodes": nodes, "seconds": round(elapsed, 1), "node_hours": round(node_hours, 2), "rows": counts,
            "rows_per_post_hour": per, "on_map": on_map, "sample_tele": sample}


def measure_flood(b, url, posts, seconds, sample):
    """Flood telemetry for `posts` ids; (figures, bytes per tele row)."""
    app = _console(b, url)
    pub = _publisher(b)
    try:
        size0 = app.store.size_bytes()
        rows0 = app.ingest.stats["rows"]
        msgs0 = app.ingest.stats["messages"]
        stop = threading.Event()
        sent = [0]
        base_t = int(time.time())

        def flood():
            i = 0
            while not stop.is_set():
                doc = dict(sample)
                n = i % posts
                doc["t"] = base_t + (i // posts) * DEFAULT_TELE_S  # each post's clock steps one telemetry period
                doc["energy_wh"] = round(1000.0 + (i // posts) * 5.0, 1)
                pub.publish("%s/b-%05d/tele" % (PREFIX, n), json.dumps(doc), qos=0)
                i += 1
                sent[0] = i
                if i % 2000 == 0:
                    time.sleep(0.001)  # let paho's network thread write

        th = threading.Thread(target=flood, daemon=True)
        t0 = time.time()
        th.start()
        time.sleep(seconds)
        stop.set()
        th.join()
        t_sent = time.time() - t0
        # Let ingest drain what the broker already delivered, then take the rate over the whole window.
        limit = t0 + seconds * 6
        while time.time() < limit:
            seen = app.ingest.stats["messages"]
            time.sleep(0.5)
            with app.op.cond:
                pending = len(app.op.raw)
            with app.store.lock:  # waits out a batch being written
                pass
            if pending == 0 and app.ingest.stats["messages"] == seen:
                break
        t_all = time.time() - 0.5 - t0
        rows = app.ingest.stats["rows"] - rows0
        msgs = app.ingest.stats["messages"] - msgs0
        counts = app.store.counts()
        size = app.store.size_bytes() - size0
        errors = {k: v for k, v in app.ingest.stats.items() if "error" in k}
    finally:
        pub.loop_stop()
        pub.disconnect()
        _close(app)
    tele_rows = counts["tele_raw"]
    return {"published": sent[0], "publish_s": round(t_sent, 2), "published_per_s": round(sent[0] / t_sent),
            "ingested_messages": msgs, "rows": rows, "ingest_s": round(t_all, 2),
            "rows_per_s": round(rows / t_all), "messages_per_s": round(msgs / t_all),
            "tele_rows": tele_rows, "db_bytes_grown": size, "db_errors": errors,
            "bytes_per_tele_row": round(size / tele_rows, 1) if tele_rows else None}


class _NoBroker:
    """What Ingest needs of an Operator when the day is fed to it directly (no broker in the loop)."""

    prefix = PREFIX

    def __init__(self):
        self.cond = threading.Condition()
        self.raw, self.events, self.replies = [], [], {}


def measure_day(url, posts, sample, tele_s=DEFAULT_TELE_S):
    """Database growth of one day for `posts` posts, through the real Ingest: a birth, telemetry every tele_s,
    the default program's four state changes (dusk on, 23:00 dim, 04:30 up, dawn off), and one post in fifty
    raising and clearing an alarm. (bytes for the day, rows by table)."""
    from console.ingest import Ingest
    from console.live import Fleet

    store = Store.open(url)
    try:
        ing = Ingest(_NoBroker(), Fleet(), store, commander=None)
        size0 = store.size_bytes()
        day0 = 1773446400  # 2026-03-14 00:00 UTC (07:00 in Padang)
        steps = {11 * 3600 + 1800: (100, "program:default"), 16 * 3600: (60, "program:default"),
                 21 * 3600 + 1800: (100, "program:default"), 23 * 3600: (0, "program:default")}
        batch = []
        for k in range(int(86400 / tele_s)):
            t = day0 + k * tele_s
            for i in range(posts):
                node = "d-%05d" % i
                if k == 0:
                    batch.append(_m(node, "status", {"online": True, "fw": "0.1.0", "id": node,
                                                     "groups": ["street-%d" % (i % 20), "city"], "safe_mode": False}))
                doc = dict(sample, t=t, energy_wh=round(1000.0 + k * 5.0, 1))
                batch.append(_m(node, "tele", doc))
                for at, (level, reason) in steps.items():
                    if at <= k * tele_s < at + tele_s:
                        batch.append(_m(node, "state", {"level": level, "reason": reason, "faults": [], "t": t}))
                if i % 50 == 0 and k in (100, 110):
                    batch.append(_m(node, "event", {"kind": "alarm", "name": "lamp_failure", "active": k == 100,
                                                    "detail": {"a": 0.0}, "seq": k, "t": t}))
            if len(batch) >= 2000:
                ing.handle(batch, t)
                batch = []
        if batch:
            ing.handle(batch, day0 + 86400)
        written = store.size_bytes() - size0
        live = written
        if store.d.name != "sqlite":
            # PostgreSQL keeps the old version of every updated row (hourly sums, energy) until vacuum; the next
            # day reuses that space, so the day's lasting growth is what is left after VACUUM FULL.
            store.conn.commit()
            store.conn.autocommit = True
            store.conn.execute("VACUUM FULL")
            store.conn.autocommit = False
            live = store.size_bytes() - size0
        return written, live, store.counts()
    finally:
        store.close()


def _m(node, kind, doc):
    return ("%s/%s/%s" % (PREFIX, node, kind), json.dumps(doc).encode(), False)


def _seed_big_fleet(app, b, posts):
    """`posts` posts in the console: sites in the store (as `get config` leaves them), births and states retained."""
    plan = fleet_sim.layout(posts, seed=3, faulty=max(1, posts // 50))
    now = time.time()
    rows = []
    for node_id, groups, lat, lon, fault in plan:
        rows.append(app.store.w_node_seen(node_id, now, groups, "0.1.0"))
        rows.append(("UPDATE nodes SET lat = ?, lon = ? WHERE id = ?", (lat, lon, node_id)))
    app.store.many(rows)
    for node_id, row in app.store.nodes().items():
        app.ingest._restore(node_id, row)
    pub = _publisher(b)
    try:
        for i, (node_id, groups, lat, lon, fault) in enumerate(plan):
            level = (100, 60, 0)[i % 3]
            pub.publish("%s/%s/status" % (PREFIX, node_id), json.dumps(
                {"online": i % 97 != 0, "fw": "0.1.0", "id": node_id, "groups": groups, "safe_mode": False}),
                qos=1, retain=True)
            pub.publish("%s/%s/state" % (PREFIX, node_id), json.dumps(
                {"level": level, "reason": "program:default", "faults": ["lamp_failure"] if fault else [],
                 "t": int(now), "energy_wh": 1000.0}), qos=1, retain=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            c = app.fleet.counts()
            if c["total"] >= posts and c["unknown"] == 0:
                break
            time.sleep(0.2)
    finally:
        pub.loop_stop()
        pub.disconnect()


def _server_time(app, cookie, path, rounds=3):
    best, size = None, 0
    for _ in range(rounds):
        req = urllib.request.Request(app.url + path, headers={"Cookie": "session=" + cookie})
        t0 = time.time()
        with urllib.request.urlopen(req, timeout=120) as r:
            body = r.read()
        dt = time.time() - t0
        best = dt if best is None else min(best, dt)
        size = len(body)
    return round(best * 1000), size


def measure_pages(b, workdir, posts):
    from console import browser as browsermod

    out = {}
    why = browsermod.missing()
    for label, n in (("baseline", 10), ("big", posts)):
        b2 = Broker("auto").start()  # a clean broker: no retained posts from the other size
        app = _console(b2, os.path.join(workdir, "pages-%d.db" % n))
        web = None
        try:
            _seed_big_fleet(app, b2, n)
            token, _ = app.auth.login("bench", PASSWORD)
            row = {"posts": app.fleet.counts()["total"]}
            for path in ("/map", "/fleet", "/alarms"):
                ms, size = _server_time(app, token, path)
                row[path] = {"server_ms": ms, "bytes": size}
            if why is None:
                web = browsermod.Browser()
                web.login(app.url, "bench", PASSWORD)
                for path in ("/map", "/fleet", "/alarms"):
                    best = None
                    for _ in range(3):
                        web.driver.get(app.url + path)
                        ms = web.driver.execute_script(
                            "const t = performance.getEntriesByType('navigation')[0];"
                            "return t.loadEventEnd - t.startTime;")
                        best = ms if best is None else min(best, ms)
                    row[path]["browser_load_ms"] = round(best)
            out[label] = row
        finally:
            if web is not None:
                web.close()
            _close(app)
            b2.close()
    if why is not None:
        out["browser"] = "not measured: " + why
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--posts", type=int, default=5000)
    ap.add_argument("--flood-s", type=float, default=10.0)
    ap.add_argument("--sim-nodes", type=int, default=20)
    ap.add_argument("--sim-s", type=float, default=30.0)
    ap.add_argument("--day-posts", type=int, default=100, help="posts in the one-day growth run (scaled to 1,000)")
    ap.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--parts", default="sim,ingest,pages", help="which figures (default all)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="console-bench-")
    b = Broker("auto").start()
    pg = None
    result = {"broker": b.kind, "cores": os.cpu_count(), "default_telemetry_s": DEFAULT_TELE_S}
    try:
        parts = a.parts.split(",")
        sim = measure_sim(b, a.sim_nodes, a.sim_s, workdir) if "sim" in parts else {"sample_tele": None}
        if "sim" in parts:
            result["sim"] = {k: v for k, v in sim.items() if k != "sample_tele"}
        sample = sim["sample_tele"] or {"t": 0, "level": 100.0, "lux": 0.4, "v": 229.8, "a": 0.27, "w": 60.1,
                                        "pf": 0.96, "energy_wh": 1000.0, "burn_h": 10.0, "rssi": -62,
                                        "heap_free": 81344, "uptime_s": 3600,
                                        "link": {"connects": 1, "drops": 0, "queued": 0, "dropped": 0}}
        dbs = (["sqlite", "postgresql"] if a.db == "both" else [a.db]) if "ingest" in parts else []
        for kind in dbs:
            if kind == "sqlite":
                url = os.path.join(workdir, "flood.db")
            else:
                if pgcluster.server_bin() is None:
                    result["postgresql"] = "not measured: install the Debian package postgresql"
                    continue
                pg = pgcluster.PgCluster().start()
                url = pg.create_database("bench")
            fl = measure_flood(b, url, a.posts, a.flood_s, sample)
            day_url = os.path.join(workdir, "day.db") if kind == "sqlite" else pg.create_database("day")
            written, grown, rows = measure_day(day_url, a.day_posts, sample)
            fl["day"] = {"posts": a.day_posts, "bytes": grown, "bytes_before_vacuum": written, "rows": rows,
                         "mb_per_day_per_1000_posts": round(grown * 1000.0 / a.day_posts / 1e6, 2)}
            result[kind] = fl
        if "pages" in parts:
            result["pages"] = measure_pages(b, workdir, a.posts)
    finally:
        if pg is not None:
            pg.stop()
        b.close()
        shutil.rmtree(workdir, ignore_errors=True)
    if a.json:
        print(json.dumps(result, indent=1, sort_keys=True))
    else:
        print(report(result))
    return 0


def report(r):
    lines = ["console bench: broker %s, %d cores, default telemetry every %d s" % (r["broker"], r["cores"],
                                                                                  r["default_telemetry_s"])]
    s = r.get("sim")
    lines.append("" if s is None else
                 "virtual city: %d posts x %.0f s at 30x (%.1f post-hours): %d on the map; rows per post-hour: %s" % (
        s["nodes"], s["seconds"], s["node_hours"], s["on_map"],
        ", ".join("%s %s" % (k, v) for k, v in sorted(s["rows_per_post_hour"].items()) if v)))
    for kind in ("sqlite", "postgresql"):
        f = r.get(kind)
        if f is None:
            continue
        if isinstance(f, str):
            lines.append("%s: %s" % (kind, f))
            continue
        lines.append("%s ingest: %d rows/s sustained (%d telemetry msgs/s; baseline: %d msgs/s published into the "
                     "broker) over %.1f s; %.0f bytes per telemetry row" % (
                         kind, f["rows_per_s"], f["messages_per_s"], f["published_per_s"], f["ingest_s"],
                         f["bytes_per_tele_row"] or 0))
        d = f["day"]
        lines.append("%s growth: %.1f MB/day per 1,000 posts at %d s telemetry (a day of %d posts: %d telemetry, "
                     "%d state, %d event rows, %.1f MB%s)" % (kind, d["mb_per_day_per_1000_posts"],
                                                            r["default_telemetry_s"], d["posts"],
                                                            d["rows"]["tele_raw"], d["rows"]["state_log"],
                                                            d["rows"]["events"], d["bytes"] / 1e6,
                                                            "" if d["bytes"] == d["bytes_before_vacuum"] else
                                                            "; %.1f MB before vacuum" % (
                                                                d["bytes_before_vacuum"] / 1e6)))
    p = r.get("pages", {"big": {}})
    for path in ("/map", "/fleet", "/alarms"):
        if path not in p["big"]:
            continue
        big, base = p["big"][path], p["baseline"][path]
        lines.append("page %-7s with %d posts: browser load %s ms, server %d ms, %d KB  (baseline %d posts: %s ms, "
                     "server %d ms)" % (path, p["big"]["posts"], big.get("browser_load_ms", "-"), big["server_ms"],
                                        big["bytes"] // 1024, p["baseline"]["posts"],
                                        base.get("browser_load_ms", "-"), base["server_ms"]))
    if "browser" in p:
        lines.append(p["browser"])
    return "\n".join(line for line in lines if line)


if __name__ == "__main__":
    sys.exit(main())
