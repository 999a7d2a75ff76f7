"""Node.execute and its per-command modules: loaded for the command, dropped after, and all or nothing.

The node is the firmware's own Node on a simulated board with a manual clock (no link: commands are executed
directly). End-to-end answers through a broker are in test_e2e_node.py; memory on the ESP32-shaped runtime in
test_memory_refusal.py and test_opscenario.py.
"""

import json
import sys

from conftest import ROOT  # noqa: F401  (puts the repo and tools/ on sys.path)

import faultsim  # noqa: E402
from drivers import sim as simmod  # noqa: E402
from firmware import config as configmod  # noqa: E402
from firmware import node as nodemod  # noqa: E402
from firmware.node import Node  # noqa: E402

NIGHT = 849218400  # 2026-11-28 21:00 Padang (t2k)


def make(tmp_path, cfg=None):
    clk = faultsim.ManualClock(0)
    board = simmod.make_board(None, str(tmp_path), {"start_t2k": NIGHT, "rtc_valid_at_boot": True}, "soft", clk, clk)
    cfg = configmod.validate(cfg or {"node": {"id": "t1"}})
    board.store.write_json(configmod.CONFIG_FILE, cfg)
    n = Node(board, cfg, board.store, lambda k: 0)
    n.time.boot(board.clock.now(), None)
    n.control_step(board.clock.ticks_ms())
    return n, board


def test_command_modules_are_dropped_after_the_command(tmp_path):
    n, board = make(tmp_path)
    for cmd in ({"id": "a", "cmd": "set", "level": 40, "duration_s": None},
                {"id": "b", "cmd": "program", "programs": {"default": [{"at": "sunset", "offset_min": 0, "level": 70}]},
                 "calendar": None},
                {"id": "c", "cmd": "clear"}):
        reply = n.execute(cmd, board.clock.now())
        assert reply["ok"] is True, reply
        assert not [m for m in sys.modules if m.startswith("firmware.cmd_")], "a command module stayed loaded"
    assert n.cfg["programs"]["default"][0]["level"] == 70 and n.override is None


def test_a_command_whose_module_cannot_load_is_refused_and_the_node_runs_on(tmp_path, monkeypatch):
    n, board = make(tmp_path)
    monkeypatch.setitem(nodemod._RUNNERS, "clear", "missing_in_this_release")
    n.execute({"id": "s", "cmd": "set", "level": 30, "duration_s": None}, board.clock.now())
    reply = n.execute({"id": "c", "cmd": "clear"}, board.clock.now())
    assert reply["ok"] is False and reply["error"].startswith("cannot load firmware.cmd_missing_in_this_release")
    assert n.override == {"level": 30, "until": None}  # nothing changed
    n.control_step(board.clock.ticks_ms())
    assert n.level == 30


class _FullStore:
    """The node's own store, except that the heap gives out while the new config streams to flash."""

    def __init__(self, store):
        self.store = store
        self.writes = store.writes

    def __getattr__(self, name):
        return getattr(self.store, name)

    def write_json(self, name, doc):
        raise MemoryError("memory allocation failed")


def test_a_config_change_that_runs_out_of_memory_changes_nothing(tmp_path):
    n, board = make(tmp_path)
    before_file = board.store.read(configmod.CONFIG_FILE)
    before_cfg = n.cfg
    n.store = _FullStore(board.store)
    try:
        n.execute({"id": "x", "cmd": "config", "set": {"report": {"telemetry_s": 900}}}, board.clock.now())
        raise AssertionError("the MemoryError must reach on_message, which refuses the command")
    except MemoryError:
        pass
    assert n.cfg is before_cfg and n.cfg["report"]["telemetry_s"] == 300
    assert board.store.read(configmod.CONFIG_FILE) == before_file
    assert json.loads(before_file)["report"]["telemetry_s"] == 300


def test_a_short_override_that_ends_before_its_reply_is_answered_not_an_internal_error(tmp_path):
    # Seen on a loaded machine: `set` for 1 s, and the clock had moved past its end when the command's control
    # step ran (storing the state took that long). The override has ended; the reply still says what was set.
    n, board = make(tmp_path)
    now = board.clock.now()
    board.clock.set_now(now + 5)  # the command was received at `now`; its control step sees now + 5
    reply = n.execute({"id": "s1", "cmd": "set", "level": 50, "duration_s": 1}, now)
    assert reply["ok"] is True, reply
    assert reply["until"] == now + 1 + 946684800
    assert n.override is None and n.reason != "override"
