"""Runs after boot.py: build this platform's board (ESP32 hardware or the simulated lamp post) and run the node.

Never ends at the REPL: an exception that escapes (an import, the config, the board, the node) resets the node.
On a new version's trial boot it first leaves the reason in ota.json, so boot.py rolls back to the previous
image after the reset and the node reports why (docs/OTA.md, "Rollback"). main.py is the factory's, never updated
over the air: this guard is the one thing a release cannot break.
"""

import sys

# The MQTT receive buffer is the largest block the node ever needs (mqtt.max_payload, 8 KB by default). It is made
# before the firmware is imported (boot.py imports only what its crash guard needs, firmware/loadorder.py BOOT),
# while the heap is still in one piece: on a 2 x 32 KB heap no 8 KB run is left once the firmware is imported.
# startup.main adopts it when the config's max_payload fits (else makes its own).
rx = bytearray(8192)
made = []  # type: list  # the board, once startup has built it: its reset is the most thorough one


def _run():
    # Every module one by one from here, leaf modules first (firmware/loadorder.py): nested imports hold the C stack
    # of every level at once, and the chain through startup needed ~34 KB of an ESP32's 15.
    # The cold ones (the update agent) are left to the node, which loads them when an update needs them; a release
    # from before COLD existed has none.
    from firmware import loadorder

    cold = getattr(loadorder, "COLD", ())
    for name in loadorder.MODULES:
        if name not in cold:
            __import__(name)
    from drivers.filestore import FileStore
    from firmware import startup

    if sys.platform == "esp32":
        from drivers.esp32 import board_for, seed
    else:
        from drivers.sim import board_for, seed

    def make_board(cfg):
        made.append(board_for(cfg))
        return made[-1]

    startup.main(FileStore("."), make_board, seed(), rx)


def _note_crash(e):
    # Only builtins, like boot.py: the modules of the failed image cannot be trusted to write this.
    import json
    import os

    try:
        with open("ota.json") as f:
            d = json.loads(f.read())
        if not isinstance(d, dict) or d.get("trial") is not True:
            return
        d["crash"] = repr(e)[:160]  # bounded: it travels in the ota_rollback event
        with open("ota.json.tmp", "w") as f:
            f.write(json.dumps(d))
        os.rename("ota.json.tmp", "ota.json")  # atomic: a cut now still rolls back, without the reason
    except (OSError, ValueError) as e2:
        print("main.py: cannot note the crash:", repr(e2))


def _reset():
    if made:
        made[-1].system.reset()  # ESP32: machine.reset(); the sim: exit 78, which tools/vnode.py restarts
    if sys.platform == "esp32":
        # No board yet: the same hard reset without one. Only if the factory's own driver does not import is
        # there nothing left to reset with, and the exception ends at the REPL.
        from drivers.esp32 import System

        System().reset()
    from drivers.sim import SOFT_EXIT  # the unix port: the sim's soft-reset exit code

    sys.exit(SOFT_EXIT)


try:
    _run()
except Exception as e:  # noqa: BLE001 — whatever escapes, the node resets (SystemExit, the sim's reset, passes)
    sys.print_exception(e)
    _note_crash(e)
    _reset()
