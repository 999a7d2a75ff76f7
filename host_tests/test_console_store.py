"""The console's history and logic without a browser: the repository on SQLite and on a real PostgreSQL, the ingest
of broker messages, passwords and sessions, energy from meter counters, and the program form's validation."""

import calendar
import json

import pytest

import console  # noqa: F401  (puts tools/ on sys.path)
from console import auth, energy, pgcluster, programs
from console.ingest import Ingest
from console.live import Fleet, look_of
from console.store import Store
from firmware import config as configmod
from firmware.schema import Invalid

PREFIX = "city/lights"


@pytest.fixture(scope="module")
def pg():
    cluster = pgcluster.start_or_skip(pytest.skip)
    yield cluster
    cluster.stop()


_made = [0]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = str(tmp_path / "c.db")
    else:
        _made[0] += 1
        url = request.getfixturevalue("pg").create_database("unit_%d" % _made[0])
    s = Store.open(url)
    yield s
    s.close()


class FakeOperator:
    """Stands in for tools/operator_client.Operator in unit tests: the message log and what was sent."""

    prefix = PREFIX

    def __init__(self):
        import threading

        self.cond = threading.Condition()
        self.raw, self.events, self.replies = [], [], {}


class FakeCommander:
    def __init__(self):
        self.replies = []

    def on_reply(self, node, doc, rx):
        self.replies.append((node, doc))

    def send(self, *a, **kw):
        raise ValueError("no broker in unit tests")


def _msg(node, kind, doc, retained=False):
    return ("%s/%s/%s" % (PREFIX, node, kind), json.dumps(doc).encode(), retained)


def test_migrations_run_once_and_reopen(store, tmp_path):
    assert store.version() == 1
    assert store.migrate() == 1 and store.version() == 1  # again: nothing to do, nothing broken
    if store.d.name == "sqlite":
        path = store.conn.execute("PRAGMA database_list").fetchall()[0][2]
        store.close()
        again = Store.open(path)
        assert again.version() == 1
        store.conn = again.conn  # the fixture closes it


def test_ingest_writes_history_and_alarms_open_and_close(store):
    fleet = Fleet()
    ing = Ingest(FakeOperator(), fleet, store, FakeCommander())
    t = 1773500000
    ing.handle([_msg("n1", "status", {"online": True, "fw": "0.1.0", "groups": ["g1"]}, True),
                _msg("n1", "state", {"level": 100, "reason": "program:default", "faults": [], "t": t}, True)], t)
    assert fleet.get("n1")["look"] == "lit" and fleet.members("g1") == (["n1"], [])
    # A state that differs only by its time stamp is not a history row.
    ing.handle([_msg("n1", "state", {"level": 100, "reason": "program:default", "faults": [], "t": t + 5})], t + 5)
    assert store.counts()["state_log"] == 1
    ing.handle([_msg("n1", "event", {"kind": "alarm", "name": "lamp_failure", "active": True, "detail": {"a": 0.0},
                                     "seq": 3, "t": t + 10}),
                _msg("n1", "state", {"level": 100, "reason": "program:default", "faults": ["lamp_failure"],
                                     "t": t + 10})], t + 10)
    open_ = store.open_alarms()
    assert [(a["node"], a["name"], a["detail"]) for a in open_] == [("n1", "lamp_failure", {"a": 0.0})]  # once
    assert fleet.get("n1")["look"] == "fault"
    store.ack_alarm(open_[0]["id"], "op", t + 20)
    ing.handle([_msg("n1", "state", {"level": 100, "reason": "program:default", "faults": [], "t": t + 30})], t + 30)
    assert store.open_alarms() == []
    hist = store.alarm_history(node="n1")
    assert hist[0]["cleared_rx"] == t + 30 and hist[0]["acked_by"] == "op"
    ing.handle([_msg("n1", "status", {"online": False})], t + 40)
    assert fleet.get("n1")["look"] == "offline"
    assert [s["online"] for s in store.status_history("n1")] == [False, True]
    # Rubbish on a node topic is counted, not stored, and does not stop the batch.
    ing.handle([("%s/n1/state" % PREFIX, b"{not json", False), _msg("n1", "event", {"kind": "override_end",
                                                                                    "seq": 9, "t": t + 50})], t + 50)
    assert ing.stats["bad"] == 1 and store.events("n1")[0]["kind"] == "override_end"


def test_console_restart_reconciles_alarms_from_retained_state(store):
    t = 1773500000
    Ingest(FakeOperator(), Fleet(), store, FakeCommander()).handle(
        [_msg("n2", "state", {"level": 0, "faults": ["relay_stuck", "day_burning"], "t": t}, True)], t)
    assert sorted(a["name"] for a in store.open_alarms()) == ["day_burning", "relay_stuck"]
    # The console was down while relay_stuck cleared: the retained state it finds on restart is the truth.
    Ingest(FakeOperator(), Fleet(), store, FakeCommander()).handle(
        [_msg("n2", "state", {"level": 0, "faults": ["day_burning"], "t": t + 900}, True)], t + 900)
    assert [a["name"] for a in store.open_alarms()] == ["day_burning"]


def test_telemetry_raw_hourly_energy_and_retention(store):
    fleet = Fleet()
    ing = Ingest(FakeOperator(), fleet, store, FakeCommander())
    # 2026-03-20 in Padang: sunset 18:29 local = 11:29 UTC. Samples every 10 min from 10:00 to 13:50 UTC.
    t0 = calendar.timegm((2026, 3, 20, 10, 0, 0))
    batch = []
    for i in range(24):
        lit = t0 + i * 600 >= t0 + 90 * 60
        batch.append(_msg("n1", "tele", {"t": t0 + i * 600, "level": 100.0 if lit else 0.0, "w": 60.0 if lit else 1.0,
                                         "lux": 3.0, "energy_wh": 1000.0 + 10.0 * i}))
    ing.handle(batch, t0 + 86400)
    assert store.counts()["tele_raw"] == 24 and store.counts()["tele_hourly"] == 4
    hourly = store.tele_series("n1", t0, t0 + 4 * 3600, hourly=True)
    assert [round(v[1], 1) for v in hourly] == [0.0, 50.0, 100.0, 100.0]  # hourly means of the level
    (node, month, wh, base_wh), = store.energy_by_month()
    assert (node, month) == ("n1", "2026-03") and wh == pytest.approx(230.0)  # 23 steps of 10 Wh, from the meter
    dark_h = energy.Nights().dark_seconds(t0, t0 + 23 * 600, configmod.defaults()["site"]) / 3600
    assert 2.3 < dark_h < 2.6  # sunset about 11:29 UTC, last sample 13:50
    assert base_wh == pytest.approx(configmod.defaults()["lamp"]["nominal_w"] * dark_h)
    store.prune(t0 + 86400 + 8 * 86400, raw_days=7, hourly_days=730, log_days=90)
    assert store.counts()["tele_raw"] == 0 and store.counts()["tele_hourly"] == 4  # raw gone, aggregates kept


def test_energy_counter_reset_and_long_gaps():
    nights = energy.Nights()
    assert energy.step(nights, None, 5.0, 100, None) is None  # no previous sample: nothing to count yet
    month, wh, base = energy.step(nights, (500.0, 1000), 3.0, 1600, None)
    assert wh == 3.0  # the counter went down (a new meter): only what it counted since
    month, wh, base = energy.step(nights, (1.0, 1000), 2.0, 1000 + 7 * 3600, None)
    assert wh == 1.0 and base == 0.0  # a silence longer than 6 h: no baseline guessed


def test_energy_by_group_counts_a_node_in_each_group():
    out = energy.by_group([("a", "2026-03", 1000.0, 2000.0), ("b", "2026-03", 500.0, 2000.0)],
                          {"a": ["g1", "all-fleet"], "b": ["all-fleet"]})
    assert out == {"g1": {"2026-03": [1.0, 2.0]}, "all-fleet": {"2026-03": [1.5, 4.0]}}


def test_passwords_are_hashed_and_sessions_expire(store):
    a = auth.Auth(store)
    a.add_user("ana", "correct horse", "operator")
    stored = store.user("ana")["pw_hash"]
    assert stored.startswith("scrypt$") and "correct horse" not in stored
    assert a.login("ana", "wrong password") is None and a.login("nobody", "correct horse") is None
    token, csrf = a.login("ana", "correct horse", now=1000.0)
    s = a.session(token, now=1000.0 + 3600)
    assert s["user"] == "ana" and s["role"] == "operator" and auth.csrf_ok(s, csrf)
    assert not auth.csrf_ok(s, csrf + "x") and not auth.csrf_ok(s, None)
    assert a.session(token, now=1000.0 + 3600 + auth.SESSION_IDLE_S + 1) is None
    for name, pw, role, why in (("", "long enough", "viewer", "names"), ("bob", "short", "viewer", "8 characters"),
                                ("bob", "long enough", "admin", "role")):
        with pytest.raises(ValueError, match=why):
            a.add_user(name, pw, role)


def test_wrong_passwords_lock_the_name_out_for_a_while(store):
    a = auth.Auth(store)
    a.add_user("ana", "correct horse", "operator")
    for i in range(auth.MAX_FAILURES):
        assert a.login("ana", "guess %d" % i, now=1000.0 + i) is None
    assert a.locked("ana", now=1010.0) > 0
    assert a.login("ana", "correct horse", now=1010.0) is None  # even the right password, while locked
    assert a.locked("bob", now=1010.0) == 0  # other names are not affected
    assert a.locked("ana", now=1004.0 + auth.LOCKOUT_S + 1) == 0
    assert a.login("ana", "correct horse", now=1004.0 + auth.LOCKOUT_S + 1) is not None
    assert "ana" not in a.failures  # a good login starts the count afresh


def test_look_of_a_post():
    assert look_of({"online": False}, {"level": 100, "faults": []}) == "offline"
    assert look_of({"online": True}, {"level": 100, "faults": ["lamp_failure"]}) == "fault"
    assert [look_of(None, {"level": lv, "faults": []}) for lv in (0, 40, 100)] == ["off", "dimmed", "lit"]
    assert look_of(None, None) == "unknown"


class _AppStub:
    def __init__(self, configs):
        self.fleet = Fleet()
        with self.fleet.cond:
            for n, cfg in configs.items():
                p = self.fleet.post(n)
                p.groups, p.config, p.status = ["g"], cfg, {"online": True}


def _form(steps, calendar=()):
    f = {"p0_name": "default", "p1_name": ""}
    for j, (at, off, level) in enumerate(steps):
        f.update({"p0_s%d_at" % j: at, "p0_s%d_offset" % j: str(off), "p0_s%d_level" % j: str(level)})
    f.update({"p0_s%d_at" % len(steps): "", "p0_s%d_level" % len(steps): ""})  # the empty row is ignored
    for k, (prog, dates) in enumerate(calendar):
        f.update({"c%d_program" % k: prog, "c%d_dates" % k: dates, "c%d_priority" % k: "5"})
    return f


def test_program_form_is_checked_by_the_node_schemas():
    app = _AppStub({"n1": configmod.redact(configmod.defaults())})
    doc = programs.read_form(_form([("sunset", 0, 100), ("23:00", 0, 50), ("sunrise", -10, 0)]))
    ok = programs.validate(app, doc, "g")
    assert ok["programs"]["default"][2] == {"at": "sunrise", "offset_min": -10, "level": 0}
    with pytest.raises(Invalid, match=r"programs.default\[1\].at"):
        programs.validate(app, programs.read_form(_form([("sunset", 0, 100), ("24:61", 0, 50)])), "g")
    with pytest.raises(Invalid, match="level"):
        programs.read_form(_form([("sunset", 0, "lots")]))
    with pytest.raises((Invalid, ValueError), match="holiday"):  # the calendar names a program that does not exist
        programs.validate(app, programs.read_form(_form([("sunset", 0, 100)], [("holiday", "08-17")])), "g")


def test_night_preview_uses_the_energy_reports_night():
    doc = {"programs": {"default": [{"at": "sunset", "offset_min": 0, "level": 100},
                                    {"at": "22:00", "offset_min": 0, "level": 30},
                                    {"at": "sunrise", "offset_min": 0, "level": 0}]}, "calendar": []}
    chart, fig = programs.preview(configmod.defaults(), doc, "2026-12-02")
    assert chart.startswith("<svg") and "sunset" in chart and "sunrise" in chart
    assert 0 < fig["wh"] < fig["full_wh"]  # dimmed to 30 % from 22:00: less than all night at full power


class _PageApp:
    """What a page function reads of the app: the live fleet and the store."""

    def __init__(self, store):
        self.store = store
        self.fleet = Fleet()


def test_energy_page_shows_metered_kwh_per_group_against_the_baseline(store):
    from console import pages

    app = _PageApp(store)
    with app.fleet.cond:
        for n, groups in (("a", ["jl-a", "city"]), ("b", ["city"])):
            app.fleet.post(n).groups = groups
    store.many([("INSERT INTO nodes (id, first_rx, last_rx) VALUES (?, ?, ?)", (n, 0, 0)) for n in "ab"])
    store.many(store.w_energy("a", "2026-03", 6000.0, 12000.0, 0.0, 0) + store.w_energy("b", "2026-03", 3000.0,
                                                                                         4000.0, 0.0, 0))
    html = pages.energy_page(app, None, {})
    row = html[html.index("<td>city</td>"):].split("</tr>")[0]
    assert "<b>9.00</b>" in row and "/ 16.00" in row and "−44 %" in row  # 9 kWh metered vs 16 all night full
    assert "<td>jl-a</td>" in html and "<svg" in html


def test_map_draws_every_located_post_its_groups_and_a_scale():
    from console import svg

    posts = []
    for i in range(40):
        posts.append({"id": "p%02d" % i, "look": ("lit", "dimmed", "off", "fault", "offline")[i % 5], "level": 50,
                      "reason": "program:default", "faults": [], "groups": ["street-%d" % (i % 2), "city"],
                      "lat": -0.95 + 0.0003 * (i // 2), "lon": 100.35 + 0.002 * (i % 2), "online": True})
    posts.append(dict(posts[0], id="nowhere", lat=None, lon=None))
    out = svg.map_svg(posts)
    assert out.count('<circle class="post ') == 40 and 'data-id="nowhere"' not in out
    assert out.count('class="post fault"') == 8
    assert ">street-0</text>" in out and ">street-1</text>" in out and ">city</text>" not in out  # fleet-wide: no band
    assert '<g class="scale">' in out and (" m</text>" in out or " km</text>" in out)
