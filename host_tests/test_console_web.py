"""The console in a real browser (headless Chromium via Selenium) against a real broker and three virtual lamp posts
(the firmware under the MicroPython unix port), with its history on SQLite and on PostgreSQL.

What a lighting engineer does, checked end to end: the map shows every post; `set` from a post's page changes the
lamp and its colour on the map (and the map follows changes made elsewhere, live); an alarm injected in a post
(a dead lamp in its sim.json) appears within seconds; a program pushed to a group reports every member; a viewer
cannot command; a forged form post (no or wrong CSRF token) is refused and nothing is sent.
"""

import json
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

import console  # noqa: F401  (puts tools/ on sys.path)
from console import browser as browsermod
from console import pgcluster
from console.app import App
from nodekit import NIGHT_T2K, make_node
from operator_client import Operator

import fleet
from broker import Broker

pytestmark = pytest.mark.skipif(browsermod.missing() is not None, reason=browsermod.missing() or "")

GROUP = "district-a"
NODES = (("lp-0001", -0.9500, 100.3500), ("lp-0002", -0.9512, 100.3521), ("lp-0003", -0.9531, 100.3508))
USERS = {"op": ("operator", "op-password-1"), "viewer": ("viewer", "viewer-password-1")}
WAIT_S = 30  # generous on a loaded machine; every wait polls a condition, none asserts a duration


def _node_config(broker, node_id, lat, lon):
    return {"node": {"id": node_id, "groups": [GROUP, "street-" + node_id[-1]]},
            "site": {"lat": lat, "lon": lon},
            "mqtt": {"brokers": [{"host": broker.host, "port": broker.port}], "keepalive_s": 10,
                     "backoff_min_s": 1, "backoff_max_s": 2, "ack_timeout_s": 2},
            "report": {"telemetry_s": 30, "min_interval_s": 5},
            "faults": {"lamp_failure": {"delay_s": 2, "clear_s": 2}},
            "system": {"control_ms": 200}}


def _sim(seed, faults=()):
    return {"speed": 1, "start_t2k": NIGHT_T2K, "seed": seed, "rtc_valid_at_boot": True, "faults": list(faults)}


@pytest.fixture(scope="module")
def city():
    """A broker, three virtual posts at night (lit by the default program) and a test-side Operator."""
    broker = Broker("auto").start()
    tmp = tempfile.mkdtemp(prefix="console-city-")
    nodes = {}
    op = None
    try:
        for i, (n, lat, lon) in enumerate(NODES):
            vn = make_node(os.path.join(tmp, n), broker, n, sim=_sim(40 + i),
                           config=_node_config(broker, n, lat, lon))
            vn.start()
            nodes[n] = vn
        op = Operator(broker.host, broker.port)
        op.wait_for(lambda: all(op.state.get(n, {}).get("level") == 100 and op.status.get(n, {}).get("online")
                                for n in nodes), 60)
        yield {"broker": broker, "nodes": nodes, "op": op, "dir": tmp}
    finally:
        if op is not None:
            op.close()
        for vn in nodes.values():
            vn.stop()
        broker.close()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def pg():
    cluster = pgcluster.start_or_skip(pytest.skip)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request, city, tmp_path_factory):
    """The console under test: its own database (SQLite file or a PostgreSQL database), users, web server."""
    from console.store import Store

    if request.param == "sqlite":
        url = str(tmp_path_factory.mktemp("console") / "console.db")
    else:
        url = request.getfixturevalue("pg").create_database("console_web")
    store = Store.open(url)
    b = city["broker"]
    settings = {"broker": "mqtt://%s:%d" % (b.host, b.port), "prefix": "city/lights", "user": None, "password": None,
                "ca": None, "key": None, "group_key": None}
    app = App(fleet.connect(settings, client_id="console-test"), store)
    for name, (role, password) in USERS.items():
        app.auth.add_user(name, password, role)
    app.start("127.0.0.1", 0)
    # The map needs each post's site: wait for their `get config` replies (asked at their birth).
    deadline = time.time() + WAIT_S
    while time.time() < deadline and not all((app.fleet.get(n) or {}).get("lat") is not None for n, _, _ in NODES):
        time.sleep(0.1)
    yield app
    app.close()
    app.op.close()
    store.close()


@pytest.fixture(scope="module")
def web():
    b = browsermod.Browser()
    yield b
    b.close()


def _login(web, app, user):
    web.driver.delete_all_cookies()
    web.login(app.url, user, USERS[user][1])
    _wait(lambda: web.cookie() is not None, "login cookie")


def _wait(predicate, what, timeout=WAIT_S):
    deadline = time.time() + timeout
    while True:
        try:
            v = predicate()
        except Exception:  # an element mid-update (stale) counts as "not yet"
            v = None
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.1)


def _css(web, selector):
    from selenium.webdriver.common.by import By

    return web.driver.find_elements(By.CSS_SELECTOR, selector)


def _post(app, path, form, cookie=None, fetch=True):
    """A raw form post, as another site (or a script) would send it: (status, body)."""
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if cookie:
        headers["Cookie"] = "session=" + cookie
    if fetch:
        headers["X-Console-Fetch"] = "1"
    req = urllib.request.Request(app.url + path, data=urllib.parse.urlencode(form).encode(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _accept_alert(driver):
    from selenium.common.exceptions import NoAlertPresentException

    try:
        driver.switch_to.alert.accept()
        return True
    except NoAlertPresentException:
        return False


def _circle_class(web, node):
    els = _css(web, 'circle.post[data-id="%s"]' % node)
    return els[0].get_attribute("class") if els else None


def _restore(city, node):
    """Back to the program: no override."""
    op = city["op"]
    op.command(node, "clear", timeout=15)
    op.wait_for(lambda: op.state.get(node, {}).get("reason", "").startswith("program"), 15)


def test_map_shows_every_post(site, web):
    _login(web, site, "op")

    def every_post_drawn():
        web.driver.get(site.url + "/map")  # server-drawn: a post appears once its site (get config) is known
        return all(_circle_class(web, n) == "post lit" for n, _, _ in NODES)

    _wait(every_post_drawn, "every post on the map, lit")
    assert _css(web, "#count-total")[0].text == str(len(NODES))
    assert _css(web, "#count-lit")[0].text == str(len(NODES))
    labels = [e.text for e in _css(web, "text.group-label")]
    assert "street-1" in labels and "street-3" in labels  # groups drawn; district-a holds every post
    assert _css(web, ".scale text")[0].text.endswith("m")  # a scale bar, in metres at this size


def test_fleet_table_filters_sorts_and_counts(site, web, city):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _login(web, site, "op")
    d = web.driver
    d.get(site.url + "/fleet")
    ids = lambda: [r.get_attribute("data-id") for r in _css(web, "#fleet-table tbody tr")]  # noqa: E731
    assert ids() == [n for n, _, _ in NODES]
    assert _css(web, "#count-total")[0].text == str(len(NODES))
    Select(d.find_element(By.ID, "f-group")).select_by_value("street-2")  # submits the filter form
    _wait(lambda: ids() == ["lp-0002"], "the group filter")
    assert "1–1 of 1" in d.find_element(By.ID, "f-shown").text
    d.get(site.url + "/fleet?sort=post&dir=desc")
    assert ids() == [n for n, _, _ in reversed(NODES)]
    d.find_element(By.ID, "f-text").send_keys("lp-0003")
    _wait(lambda: ids() == ["lp-0003"], "the text filter")


def test_set_from_post_page_changes_lamp_and_map(site, web, city):
    from selenium.webdriver.common.by import By

    node = "lp-0002"
    op = city["op"]
    _login(web, site, "op")
    d = web.driver
    d.get(site.url + "/post/" + node)
    form = d.find_element(By.ID, "cmd-set")
    level = form.find_element(By.NAME, "level")
    level.clear()
    level.send_keys("40")
    form.find_element(By.TAG_NAME, "button").click()
    row = _wait(lambda: [r for r in _css(web, '#reply-table tr[data-node="%s"]' % node) if "ok" in r.text],
                "the node's reply on the post page")
    assert "level=40" in row[0].text
    op.wait_for(lambda: op.state.get(node, {}).get("level") == 40, 15)  # the lamp itself
    # The open post page follows its post live (no reload): the state chip and the level.
    _wait(lambda: d.find_element(By.ID, "post-look").text == "dimmed", "the post page's live state")
    _wait(lambda: d.find_element(By.ID, "kv-level").text == "40", "the post page's live level")
    d.get(site.url + "/map")
    _wait(lambda: _circle_class(web, node) == "post dimmed", "the map colour for 40 %")
    # Live: a change made elsewhere (here the fleet CLI's own client) reaches the open map without a reload.
    op.command(node, "set", level=0, duration_s=600)
    _wait(lambda: _circle_class(web, node) == "post off", "the live map update to off")
    _restore(city, node)
    _wait(lambda: _circle_class(web, node) == "post lit", "back to lit")
    cmds = site.store.recent_commands(node)
    assert cmds and cmds[0]["cmd"] == "set" and cmds[0]["user"] == "op"
    assert site.store.command_results(cmds[0]["id"])[node]["result"] == "ok"


def test_group_command_from_the_fleet_page_reports_every_node(site, web, city):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _login(web, site, "op")
    d = web.driver
    d.get(site.url + "/fleet")
    form = d.find_element(By.ID, "cmd-group")
    Select(form.find_element(By.NAME, "target")).select_by_value(GROUP)
    Select(form.find_element(By.NAME, "cmd")).select_by_value("identify")
    form.find_element(By.TAG_NAME, "button").click()
    rows = _wait(lambda: [r for r in _css(web, "#reply-table tr[data-node]") if "ok" in r.text]
                 if len(_css(web, "#reply-table tr[data-node]")) == len(NODES) and
                 all("ok" in r.text for r in _css(web, "#reply-table tr[data-node]")) else None,
                 "every member's reply")
    assert {r.get_attribute("data-node") for r in rows} == {n for n, _, _ in NODES}
    cmd = site.store.recent_commands()[0]
    assert (cmd["cmd"], cmd["target_kind"], cmd["target"]) == ("identify", "group", GROUP)


def _restart_with_faults(city, node, faults):
    vn = city["nodes"][node]
    seed = 40 + [n for n, _, _ in NODES].index(node)
    with open(os.path.join(vn.dir, "sim.json"), "w") as f:
        json.dump(_sim(seed, faults), f)
    vn.restart("power_on")


def test_injected_alarm_appears_and_is_acknowledged(site, web, city):
    from selenium.webdriver.common.by import By

    node = "lp-0003"
    _login(web, site, "op")
    d = web.driver
    d.get(site.url + "/alarms")
    assert not _css(web, '#active-alarms tr[data-alarm="lamp_failure"]')
    _restart_with_faults(city, node, [{"kind": "lamp_dead"}])
    try:
        row = _wait(lambda: [r for r in _css(web, '#active-alarms tr[data-alarm="lamp_failure"]') if node in r.text],
                    "the lamp_failure alarm on the alarms page")[0]
        assert re.match(r"^\d+ (s|min)$", row.find_elements(By.TAG_NAME, "td")[2].text)  # its age
        row.find_element(By.TAG_NAME, "button").click()
        _wait(lambda: _css(web, '#active-alarms tr.acked[data-alarm="lamp_failure"]'), "acknowledged")
        assert any(a["acked_by"] == "op" and a["node"] == node for a in site.store.open_alarms())
        d.get(site.url + "/map")
        _wait(lambda: _circle_class(web, node) == "post fault", "the fault colour on the map")
    finally:
        _restart_with_faults(city, node, [])
        op = city["op"]
        op.wait_for(lambda: op.status.get(node, {}).get("online") and op.state.get(node, {}).get("faults") == [], 60)
    _wait(lambda: not [a for a in site.store.open_alarms() if a["node"] == node], "the alarm cleared in history")
    hist = [a for a in site.store.alarm_history(node=node) if a["name"] == "lamp_failure"]
    assert hist and hist[0]["cleared_rx"] is not None and hist[0]["acked_by"] == "op"
    # The restarts themselves were power cuts: supply_loss, momentary by contract, is in the history, closed.
    assert all(a["cleared_rx"] for a in site.store.alarm_history(node=node) if a["name"] == "supply_loss")


def test_program_push_reports_every_node(site, web, city):
    from selenium.webdriver.common.by import By

    _login(web, site, "op")
    d = web.driver
    d.get(site.url + "/programs?group=" + GROUP)
    # A step time the node's schema refuses: the form says which field, nothing is sent.
    field = d.find_element(By.NAME, "p0_s1_at")
    field.clear()
    field.send_keys("25:00")
    d.find_element(By.CSS_SELECTOR, 'button[value="preview"]').click()
    err = _wait(lambda: _css(web, "#program-error"), "the validation error")[0].text
    assert "programs.default[1].at" in err, err
    assert d.find_element(By.NAME, "p0_s1_at").get_attribute("value") == "25:00"  # the form keeps what was typed
    field = d.find_element(By.NAME, "p0_s1_at")
    field.clear()
    field.send_keys("23:00")
    field = d.find_element(By.NAME, "p0_s1_level")
    field.clear()
    field.send_keys("45")
    d.find_element(By.CSS_SELECTOR, 'button[value="preview"]').click()
    _wait(lambda: _css(web, "#night-chart"), "the night preview")
    assert "Valid for every member" in d.find_element(By.ID, "program-ok").text
    d.find_element(By.CSS_SELECTOR, 'button[value="push"]').click()
    _wait(lambda: _accept_alert(d), "the push's confirmation dialog")
    panel = _wait(lambda: [p for p in _css(web, "#push-progress") if p.get_attribute("data-done") == "1"],
                  "the push to finish")[0]
    results = {r.get_attribute("data-node"): r.text for r in panel.find_elements(By.CSS_SELECTOR, "tr[data-node]")}
    assert set(results) == {n for n, _, _ in NODES}
    assert all(" ok" in text for text in results.values()), results
    op = city["op"]
    for n, _, _ in NODES:
        cfg = op.command(n, "get", what="config", timeout=15)["config"]
        assert [s["level"] for s in cfg["programs"]["default"]] == [100, 45, 100, 0]


def test_viewer_cannot_command(site, web, city):
    from selenium.webdriver.common.by import By

    _login(web, site, "viewer")
    d = web.driver
    d.get(site.url + "/post/lp-0001")
    assert d.find_element(By.ID, "no-commands").is_displayed()
    assert not _css(web, "form.cmd")
    csrf = d.find_element(By.CSS_SELECTOR, "form.who input[name=csrf]").get_attribute("value")
    before = len(site.store.recent_commands())
    status, body = _post(site, "/command", {"csrf": csrf, "cmd": "set", "level": "10", "target_kind": "node",
                                            "target": "lp-0001"}, web.cookie())
    assert status == 403 and "viewers may not command" in body
    status, _ = _post(site, "/programs", {"csrf": csrf, "action": "push", "group": GROUP, "p0_name": "default",
                                          "p0_s0_at": "sunset", "p0_s0_level": "100"}, web.cookie())
    assert status == 403
    assert len(site.store.recent_commands()) == before
    assert city["op"].state["lp-0001"]["level"] == 100


def test_forged_form_posts_are_refused(site, web, city):
    _login(web, site, "op")
    cookie = web.cookie()
    form = {"cmd": "set", "level": "5", "target_kind": "node", "target": "lp-0001"}
    before = len(site.store.recent_commands())
    assert _post(site, "/command", form, cookie)[0] == 403  # no token
    assert _post(site, "/command", dict(form, csrf="forged-token"), cookie)[0] == 403  # a wrong one
    assert _post(site, "/command", dict(form, csrf="x"))[0] == 401  # no session at all
    assert _post(site, "/alarms/1/ack", {"csrf": "forged-token"}, cookie)[0] == 403
    assert len(site.store.recent_commands()) == before
    # Without a session every page leads to the login.
    with urllib.request.urlopen(site.url + "/fleet", timeout=10) as r:
        assert r.url.endswith("/login?next=/fleet")
