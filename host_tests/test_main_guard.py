"""main.py's guard on the ESP32 path, on CPython with the fake machine, network and esp32 (fake_machine.py).

The unix-port path is proven end to end by test_ota_never_strands.py; no ESP32 here, so this runs the real main.py
with `sys.platform` set to "esp32" and drivers/esp32.py on the fakes: an exception that escapes on a trial boot
leaves its reason in ota.json and ends in `machine.reset()` — never in a return to the REPL.
"""

import json
import os
import runpy
import sys

import fake_machine
import pytest
from conftest import ROOT

MAIN = os.path.join(ROOT, "main.py")


@pytest.fixture
def esp32(tmp_path, monkeypatch):
    # umqtt.simple (imported with the node) uses MicroPython's old names; CPython has only the standard modules.
    monkeypatch.setitem(sys.modules, "ustruct", sys.modules.get("ustruct") or __import__("struct"))
    monkeypatch.setitem(sys.modules, "ubinascii", sys.modules.get("ubinascii") or __import__("binascii"))
    f = fake_machine.install()
    monkeypatch.setattr(sys, "platform", "esp32")
    monkeypatch.setattr(sys, "print_exception", lambda e: print("EXC", repr(e)), raising=False)
    monkeypatch.chdir(tmp_path)
    import drivers.esp32 as board_module

    yield f, board_module
    fake_machine.uninstall()


def _ota(tmp_path, trial):
    doc = {"active": "slot_a", "previous": None, "trial": trial, "boots": 1, "version": "0.3.0", "from": "0.1.0",
           "result": None}
    (tmp_path / "ota.json").write_text(json.dumps(doc))


def _run_main():
    # machine.reset() of the fake returns (the real one never does); main.py then tries its next reset, which on
    # CPython is the sim's exit: either way the run must end in a reset, never fall through.
    with pytest.raises(SystemExit) as e:
        runpy.run_path(MAIN, run_name="__main__")
    return e.value.code


def test_board_failure_on_trial_notes_the_crash_and_resets_the_chip(tmp_path, esp32, monkeypatch):
    f, board_module = esp32
    _ota(tmp_path, True)

    def no_board(cfg):
        raise OSError(19, "release: no I2C bus")

    monkeypatch.setattr(board_module, "board_for", no_board)
    assert _run_main() == 78
    assert ("reset",) in f.log  # machine.reset(): drivers.esp32.System, no board was built
    doc = json.loads((tmp_path / "ota.json").read_text())
    assert doc["trial"] is True and "release: no I2C bus" in doc["crash"] and doc["crash"].startswith("OSError")


def test_failure_after_the_board_resets_through_the_board(tmp_path, esp32, monkeypatch):
    f, board_module = esp32
    _ota(tmp_path, True)
    made = []
    real = board_module.board_for

    def board_then_fail(cfg):
        b = real(cfg)
        made.append(b)

        def broken_start(ms):
            raise RuntimeError("release: watchdog setup")

        b.wdt.start = broken_start  # startup.main starts the watchdog outside its own try: this escapes
        return b

    monkeypatch.setattr(board_module, "board_for", board_then_fail)
    assert _run_main() == 78
    assert made and f.log.count(("reset",)) >= 1
    first_reset = f.log.index(("reset",))
    assert any(e[0] == "PWM" for e in f.log[:first_reset])  # the board existed (its lamp output) before the reset
    assert "watchdog setup" in json.loads((tmp_path / "ota.json").read_text())["crash"]


def test_outside_a_trial_it_still_resets_and_leaves_ota_json_alone(tmp_path, esp32, monkeypatch):
    f, board_module = esp32
    _ota(tmp_path, False)
    before = (tmp_path / "ota.json").read_text()
    monkeypatch.setattr(board_module, "board_for", lambda cfg: 1 / 0)
    assert _run_main() == 78
    assert ("reset",) in f.log and (tmp_path / "ota.json").read_text() == before
