"""Runs first at every reset: picks the firmware slot (OTA trial, rollback), then the crash-loop guard. Never fails."""

import sys


def _choose():
    # Only builtins until the slot is on sys.path: importing any firmware/ or drivers/ module now would pin the
    # factory copy of that package for the whole run. firmware/ota.py writes ota.json; docs/OTA.md explains it.
    import json
    import os

    def ok(s):
        try:
            return s in ("slot_a", "slot_b") and os.stat(s + "/manifest.json") is not None
        except OSError:
            return False

    def save(d):
        with open("ota.json.tmp", "w") as f:
            f.write(json.dumps(d))
        os.rename("ota.json.tmp", "ota.json")  # atomic: old or new, never a mix

    def back(d, why):
        prev = d.get("previous")
        d = {"active": prev if ok(prev) else "factory", "previous": None, "trial": False, "boots": 0,
             "version": d.get("from"), "result": {"kind": "ota_rollback", "version": d.get("version"),
                                                  "reason": why[:200], "reported": False}}
        save(d)
        print("boot.py: rolled back:", why)
        return d

    try:
        with open("ota.json") as f:
            d = json.loads(f.read())
    except (OSError, ValueError):
        return
    if not isinstance(d, dict):
        return
    if d.get("trial") is True:
        if d.get("boots") != 0:
            # main.py leaves "crash" when an exception ended the trial boot; any other reset says nothing more.
            crash = d.get("crash")
            d = back(d, "crashed on trial: " + crash if isinstance(crash, str) else
                     "reset before the new version confirmed")
        else:
            d["boots"] = 1
            save(d)
    s = d.get("active")
    if not ok(s):
        return
    sys.path.insert(0, s + "/lib")
    sys.path.insert(0, s)
    if d.get("trial") is True:
        # The first boot of a new version: what main.py imports from it (and the node) must import, or the
        # previous image runs in this same boot — before any driver has touched the hardware. These names are the
        # contract between the factory's boot.py/main.py and every release (docs/OTA.md, "Rollback").
        try:
            # One by one, leaf modules first, as main.py imports them (firmware/loadorder.py: nested imports would
            # need more C stack than an ESP32 has, and a sound release would be rolled back for it).
            from firmware.loadorder import MODULES

            for name in MODULES:
                __import__(name)
            if sys.platform == "esp32":
                import drivers.esp32  # noqa: F401
            else:
                import drivers.sim  # noqa: F401
        except Exception as e:  # noqa: BLE001 — any failure of the new image means: run the previous one
            for name in list(sys.modules):
                if name.split(".")[0] in ("firmware", "drivers", "umqtt"):
                    del sys.modules[name]
            sys.path.remove(s)
            sys.path.remove(s + "/lib")
            d = back(d, "import failed: %r" % (e,))
            if ok(d["active"]):
                sys.path.insert(0, d["active"] + "/lib")
                sys.path.insert(0, d["active"])


try:
    _choose()
except Exception as e:  # noqa: BLE001 — whatever fails here, the node must still boot (the factory image)
    print("boot.py ota:", repr(e))

try:
    # What the crash guard below needs, one module at a time, leaf modules first (firmware/loadorder.py): imported the
    # nested way, the board module would take more C stack than an ESP32 has. Only these: main.py makes its MQTT
    # receive buffer before the rest of the firmware is imported.
    from firmware.loadorder import BOOT

    for name in BOOT:
        __import__(name)
except Exception as e:  # noqa: BLE001 — main.py imports them again and reports what fails
    print("boot.py imports:", repr(e))

try:
    from drivers.filestore import FileStore
    from firmware import bootguard

    if sys.platform == "esp32":
        from drivers.esp32 import reset_cause
    else:
        from drivers.sim import reset_cause
    bootguard.at_boot(FileStore("."), reset_cause())
except Exception as e:  # noqa: BLE001 — whatever fails here, main.py must still run (normal mode by default)
    print("boot.py:", repr(e))
