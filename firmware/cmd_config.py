"""`program` and `config`: change the node's configuration, validated whole, stored, and applied live or by restart.

A change is all or nothing. Everything it needs — the merged and validated config, its bytes, the new controller
and whatever lamp, fault or meter objects the sections rebuild — is made before the first byte is written, so an
invalid patch (Invalid) or a heap that cannot hold the new config (MemoryError) leaves the node as it was. The
files are then written old-good first: a power cut between the two writes leaves config.json and config.good.json
both on the old config.
"""

from firmware import config as configmod
from firmware.control import Controller
from firmware.faults import FaultMonitor
from firmware.lampout import LampOutput
from firmware.metering import Meter

# Sections the node can take without a restart; identity, broker, hardware and security changes need one.
LIVE_SECTIONS = ("programs", "calendar", "control", "photocell", "clo", "report", "site", "lamp", "faults",
                 "metering", "time")


def run(node, cmd, now):
    ok = {"id": cmd["id"], "ok": True, "cmd": cmd["cmd"]}
    if cmd["cmd"] == "program":
        patch = {"programs": cmd["programs"]}
        if cmd["calendar"] is not None:
            patch["calendar"] = cmd["calendar"]
        change(node, patch, now)
    else:
        change(node, cmd["set"], now)
        ok["restart"] = node.pending_reset is not None
    return ok


def change(node, patch, now):
    """Validate, store and apply `patch`; raises Invalid (or MemoryError) with nothing changed."""
    new = configmod.validate(configmod.merge(node.cfg, patch))
    data = configmod.dumps(new)
    live = True
    for k in patch:
        if k not in LIVE_SECTIONS:
            live = False
    if live:
        control_cfg = configmod.safe_mode(new) if node.safe_mode else new
        controller = Controller(control_cfg)
        # The new lamp output carries the driven output over (no blink); active faults and counters carry over.
        lamp = LampOutput(new["lamp"], node.lamp) if "lamp" in patch else node.lamp
        faults = node.faults
        if "faults" in patch or "lamp" in patch:
            faults = FaultMonitor(new["faults"], new["lamp"], faults.snapshot())
        meter = Meter(new["metering"], node.meter.snapshot()) if "metering" in patch else node.meter
    old = node.store.read(configmod.CONFIG_FILE)
    if old is not None:
        node.store.write(configmod.GOOD_FILE, old)
    node.store.write(configmod.CONFIG_FILE, data)
    names = ",".join(sorted(patch))
    if live:
        node.cfg = new
        node.control_cfg = control_cfg
        node.controller = controller
        node.lamp = lamp
        node.faults = faults
        node.meter = meter
        node.log.add(now, "config changed live: " + names)
    else:
        # The boot after the restart must reach the broker with the new config, or config.good.json comes back
        # (firmware/configtrial.py).
        node.log.add(now, "config changed, restarting: " + names)
        node.pending_reset = "config"
