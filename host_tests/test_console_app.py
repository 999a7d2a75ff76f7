"""`python -m console` as a newcomer and an administrator use it: the demo city in one command (what `make console`
runs), `adduser`, and clear refusals of bad arguments."""

import io
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

import console  # noqa: F401  (puts tools/ on sys.path)
from console import app as appmod
from console.store import Store
from conftest import ROOT


def test_adduser_hashes_the_password_and_refuses_bad_input(tmp_path):
    db = str(tmp_path / "c.db")
    out = io.StringIO()
    assert appmod.main(["adduser", "ana", "--role", "operator", "--db", db], out=out,
                       stdin=io.StringIO("a good password\n")) == 0
    assert "user ana (operator) saved" in out.getvalue()
    s = Store.open(db)
    try:
        u = s.user("ana")
        assert u["role"] == "operator" and u["pw_hash"].startswith("scrypt$") and "good" not in u["pw_hash"]
    finally:
        s.close()
    assert appmod.main(["adduser", "bob", "--db", db], stdin=io.StringIO("short\n")) == 2
    assert appmod.main(["adduser", "--db", db], stdin=io.StringIO("long enough pw\n")) == 2
    assert appmod.main(["--http", "nowhere", "--db", db, "--broker", "mqtt://127.0.0.1:1"]) == 2
    assert appmod.main(["--db", str(tmp_path / "no" / "such" / "dir.db"), "--broker", "mqtt://127.0.0.1:1"]) == 2


def test_console_without_a_broker_starts_the_demo_city(tmp_path):
    """No broker given: the demo's broker and virtual posts, a first operator, pages that show them."""
    env = dict(os.environ, PYTHONPATH=ROOT, HOME=str(tmp_path))  # no fleet settings file: the demo
    env.pop("FLEET_BROKER", None)
    proc = subprocess.Popen([sys.executable, "-m", "console", "--db", str(tmp_path / "demo.db"), "--http",
                             "127.0.0.1:0", "--demo-nodes", "3", "--seconds", "120"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not any("console on http" in ln for ln in lines):
            time.sleep(0.1)
        text = "".join(lines)
        assert "no broker given: started the demo's" in text, text
        url = re.search(r"console on (http://[0-9.:]+)", text).group(1)
        password = re.search(r"user 'admin' \(operator\), password (\S+)", text).group(1)
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        opener.open(url + "/login", data=urllib.parse.urlencode({"user": "admin", "password": password}).encode())
        deadline = time.time() + 60
        posts = []
        while time.time() < deadline:
            posts = json.loads(opener.open(url + "/api/fleet").read())["posts"]
            if len(posts) == 3 and all(p["online"] and p["lat"] is not None for p in posts):
                break
            time.sleep(0.5)
        assert [p["id"] for p in posts] == ["pdg-0001", "pdg-0002", "pdg-0003"]
        assert all(p["online"] and p["lat"] is not None for p in posts), posts
        page = opener.open(url + "/map").read().decode()
        assert page.count('class="post ') == 3
    finally:
        proc.terminate()
        assert proc.wait(30) == 0  # SIGTERM: the demo's posts and broker stopped, the database closed
    reader.join(5)
    assert "Traceback" not in "".join(lines)
