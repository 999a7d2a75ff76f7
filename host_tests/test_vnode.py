"""tools/vnode.py: the supervisor of one virtual node, driving real micropython processes with stand-in mains."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))
from vnode import VirtualNode, minimal_config  # noqa: E402

from firmware.schema import Invalid  # noqa: E402

# Every stand-in main appends "<boot number> <SIM_RESET_CAUSE>" to boots.txt in its cwd (the node directory), so the
# test sees what each process was told, then acts by boot number.
PROLOGUE = """
import os, sys, time
cause = os.getenv("SIM_RESET_CAUSE")
try:
    n = len(open("boots.txt").read().split("\\n")) - 1
except OSError:
    n = 0
n += 1
with open("boots.txt", "a") as f:
    f.write("%d %s\\n" % (n, cause))
"""


def _main(tmp_path, body):
    p = tmp_path / "standin_main.py"
    p.write_text(PROLOGUE + textwrap.dedent(body))
    return str(p)


def _boots(node_dir):
    try:
        with open(os.path.join(node_dir, "boots.txt")) as f:
            return [line.split(" ", 1)[1] for line in f.read().splitlines()]
    except FileNotFoundError:
        return []


def _wait_booted(node_dir, n):
    """Wait until the n-th process has written its line (so a kill cannot come before the stand-in ran)."""
    deadline = time.monotonic() + 20
    while len(_boots(node_dir)) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    return _boots(node_dir)


def test_restarts_on_soft_and_watchdog_codes_with_the_right_cause(tmp_path):
    main = _main(tmp_path, """
        sys.exit({1: 78, 2: 77, 3: 78}.get(n, 3))
    """)
    d = str(tmp_path / "node")
    vn = VirtualNode(d, main=main).start()
    assert vn.wait_exit(30) == 3
    assert vn.history == [("power_on", 78), ("soft", 77), ("wdt", 78), ("soft", 3)]
    assert _boots(d) == ["power_on", "soft", "wdt", "soft"]
    assert not vn.alive() and vn.boots == 4
    assert "boot 4, SIM_RESET_CAUSE=soft" in vn.read_log()


def test_creates_the_directory_with_config_and_sim(tmp_path):
    main = _main(tmp_path, "")
    d = str(tmp_path / "lamp-7")
    vn = VirtualNode(d, sim={"speed": 720, "seed": 3}, main=main).start()
    assert vn.wait_exit(30) == 0
    with open(os.path.join(d, "config.json")) as f:
        assert json.load(f) == {"node": {"id": "lamp-7"}} == minimal_config(d)
    with open(os.path.join(d, "sim.json")) as f:
        assert json.load(f) == {"speed": 720, "seed": 3}
    cfg = {"node": {"id": "x1"}, "report": {"telemetry_s": 60}}
    cfg_file = tmp_path / "given.json"
    cfg_file.write_text(json.dumps(cfg))
    VirtualNode(d, config=str(cfg_file), main=main).start().wait_exit(30)
    with open(os.path.join(d, "config.json")) as f:
        assert json.load(f) == cfg
    with open(os.path.join(d, "sim.json")) as f:
        assert json.load(f)["speed"] == 720  # kept: the directory is the node's flash
    with pytest.raises(Invalid):
        VirtualNode(str(tmp_path / "bad"), sim={"speed": -1}, main=main).start()
    assert minimal_config("/tmp/Not A Name") == {}


def test_watchdog_fires_in_a_real_micropython_process(tmp_path):
    # Boot 1 feeds for 1 s (3x the timeout: feeding works), then hangs in a blocking sleep; boot 2 hangs in a
    # busy loop; boot 3 exits cleanly. Both hangs must end in a watchdog reset.
    main = _main(tmp_path, """
        from drivers.sim import make_board
        b = make_board(None, ".")
        if n == 3:
            sys.exit(0)
        b.wdt.start(300)
        t0 = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t0) < 1000:
            time.sleep_ms(50)
            b.wdt.feed()
        with open("fed.txt", "a") as f:
            f.write("%d\\n" % n)
        if n == 1:
            time.sleep(60)
        while True:
            pass
    """)
    d = str(tmp_path / "node")
    t0 = time.monotonic()
    vn = VirtualNode(d, main=main).start()
    assert vn.wait_exit(30) == 0
    took = time.monotonic() - t0
    assert vn.history == [("power_on", 77), ("wdt", 77), ("wdt", 0)]
    assert _boots(d) == ["power_on", "wdt", "wdt"]
    with open(os.path.join(d, "fed.txt")) as f:
        assert f.read().split() == ["1", "2"]  # each hang came after a full second of feeding
    assert vn.read_log().count("sim: watchdog: not fed for") == 2
    assert took < 10  # 2 x (1 s feeding + 0.3 s timeout) + start-up, not the 60 s sleep
    assert not os.path.exists(os.path.join(d, "sim_reset"))  # the record was consumed


def test_external_sigkill_is_not_a_watchdog_reset(tmp_path):
    main = _main(tmp_path, """
        while True:
            time.sleep(0.05)
    """)
    d = str(tmp_path / "node")
    vn = VirtualNode(d, main=main).start()
    pid = vn.pid
    _wait_booted(d, 1)
    assert vn.alive()
    vn.kill(signal.SIGKILL)
    assert vn.wait_exit(10) == -signal.SIGKILL
    assert vn.history == [("power_on", -9)] and not vn.alive()
    # Power comes back: the node boots again, told so.
    vn.restart("power_on")
    assert vn.alive() and vn.pid != pid
    assert _wait_booted(d, 2) == ["power_on", "power_on"]
    assert vn.stop() == -signal.SIGTERM
    assert vn.history == [("power_on", -9), ("power_on", -15)]


def test_restart_while_running_cuts_power_and_passes_the_cause(tmp_path):
    main = _main(tmp_path, """
        while True:
            time.sleep(0.05)
    """)
    d = str(tmp_path / "node")
    vn = VirtualNode(d, main=main).start()
    first = vn.pid
    _wait_booted(d, 1)
    vn.restart("brownout")
    assert vn.pid != first and vn.alive() and vn.boots == 2
    assert _wait_booted(d, 2) == ["power_on", "brownout"]
    assert vn.history == [("power_on", -9)]
    vn.stop()
    assert not vn.alive()


def test_sim_clock_survives_a_soft_reset_but_not_a_power_cut(tmp_path):
    main = _main(tmp_path, """
        from drivers.sim import make_board
        b = make_board(None, ".")
        with open("now.txt", "a") as f:
            f.write("%s %d\\n" % (cause, b.clock.now()))
        if n == 1:
            b.clock.set_now(800000000)
            b.system.reset()
        if n == 2:
            time.sleep(0.5)
            sys.exit(5)
    """)
    d = str(tmp_path / "node")
    vn = VirtualNode(d, main=main, sim={"rtc_valid_at_boot": False, "speed": 10}).start()
    assert vn.wait_exit(30) == 5
    vn.restart("power_on")
    assert vn.wait_exit(30) == 0
    with open(os.path.join(d, "now.txt")) as f:
        rows = [line.split() for line in f.read().splitlines()]
    assert [r[0] for r in rows] == ["power_on", "soft", "power_on"]
    assert int(rows[0][1]) < 20  # the RTC was lost: 2000-01-01
    assert 800000000 <= int(rows[1][1]) < 800000000 + 60  # kept through the soft reset (10x speed)
    assert int(rows[2][1]) < 20  # lost again after the power cut


def _cli(tmp_path, main, *extra):
    d = str(tmp_path / "cli-node")
    return d, subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "vnode.py"), "--dir", d, "--main", main,
                                "--log", os.path.join(str(tmp_path), "cli.log")] + list(extra),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_cli_passes_exit_codes_through(tmp_path):
    main = _main(tmp_path, """
        sys.exit(78 if n == 1 else 5)
    """)
    d, p = _cli(tmp_path, main)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 5, err
    assert _boots(d) == ["power_on", "soft"]
    assert "boot with soft ended with exit code 5" in err


def test_cli_forwards_sigterm(tmp_path):
    main = _main(tmp_path, """
        with open("pid.txt", "w") as f:
            f.write(open("/proc/self/stat").read().split()[0])
        while True:
            time.sleep(0.05)
    """)
    d, p = _cli(tmp_path, main)
    pid_file = os.path.join(d, "pid.txt")
    deadline = time.monotonic() + 20
    while not (os.path.exists(pid_file) and open(pid_file).read()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(open(pid_file).read())
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=20)
    assert p.returncode == 128 + signal.SIGTERM
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # the node went with it, reaped
