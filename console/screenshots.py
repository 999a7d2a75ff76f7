"""Screenshots of every console page, for docs/img/console_*.png: a living demo city in headless Chromium.

    .venv/bin/python -m console.screenshots [--out docs/img] [--posts 30] [--seconds 60]

Starts the demo (a broker and --posts virtual posts through tools/fleet_sim.py, their clocks at 60x from just
before sunset), a console on a fresh SQLite file, lets the night begin for --seconds, dims two posts with `set`,
unplugs one (offline), pushes nothing, then captures the map, fleet, alarms, a post, programs (with the night
preview) and energy pages.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

from console import browser as browsermod
from console.app import App, Demo
from console.store import Store

import fleet

PAGES = (("map", "/map"), ("fleet", "/fleet"), ("alarms", "/alarms"), ("post", None), ("programs", None),
         ("energy", "/energy"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join("docs", "img"))
    ap.add_argument("--posts", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=60.0)
    a = ap.parse_args(argv)
    why = browsermod.missing()
    if why:
        sys.stderr.write("screenshots: %s\n" % why)
        return 2
    os.makedirs(a.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="console-shots-")
    demo = Demo(a.posts, 60.0)
    store = Store.open(os.path.join(work, "console.db"))
    settings = {"broker": demo.url, "prefix": "city/lights", "user": None, "password": None, "ca": None,
                "key": None, "group_key": None}
    app = App(fleet.connect(settings, client_id="console-shots"), store)
    app.auth.add_user("engineer", "engineer-password", "operator")
    app.start("127.0.0.1", 0)
    web = None
    try:
        end = time.time() + a.seconds
        dimmed = False
        while time.time() < end:
            time.sleep(1.0)
            if not dimmed and time.time() > end - a.seconds / 2:
                app.commander.send("engineer", ("node", ["pdg-0002", "pdg-0007"]), "set",
                                   {"level": 40, "duration_s": 7200})
                demo.sim.nodes[-1][1].stop()  # one post loses power: the broker publishes its Last Will
                dimmed = True
        web = browsermod.Browser(1360, 940)
        web.login(app.url, "engineer", "engineer-password")
        post = "pdg-0002"
        for name, path in PAGES:
            if name == "post":
                path = "/post/%s?period=1h" % post
            if name == "programs":
                web.driver.get(app.url + "/programs")
                web.driver.find_element("css selector", 'button[value="preview"]').click()
                time.sleep(1.5)
            else:
                web.driver.get(app.url + path)
                time.sleep(1.5)  # the live stream connects; the page settles
            if name in ("post", "programs"):
                # Long pages: the whole page, not the first screen.
                h = web.driver.execute_script("return document.body.scrollHeight")
                web.driver.set_window_size(1360, min(max(940, h + 40), 2400))
                time.sleep(0.5)
            target = os.path.join(a.out, "console_%s.png" % name)
            web.driver.save_screenshot(target)
            web.driver.set_window_size(1360, 940)
            print("wrote", target)
    finally:
        if web is not None:
            web.close()
        app.close()
        app.op.close()
        store.close()
        demo.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
