"""`program` and `config`: change the node's configuration, validated whole, stored, and applied live or by restart.

A change is all or nothing. Everything it needs — the merged and validated config, the new controller and whatever
lamp, fault or meter objects the sections rebuild — is made before the first byte is written, so an invalid patch
(Invalid) or a heap that cannot hold the new config (MemoryError) leaves the node as it was. The files are then
written old-good first, each atomically (a failure while the new config streams to flash leaves only a temp file):
a power cut between the two writes leaves config.json and config.good.json both on the old config. Both are
written before `run` returns, so the reply comes after the change is on flash (the durability rule,
docs/OPERATIONS.md).
"""

from firmware import config as configmod
from firmware.control import Controller
from firmware.faults import FaultMonitor
from firmware.lampout import LampOutput
from firmware.metering import Meter
from firmware.schema import Invalid

# Sections the node can take without a restart; identity, broker, hardware and security changes need one.
LIVE_SECTIONS = ("programs", "calendar", "control", "photocell", "clo", "report", "site", "lamp", "faults",
                 "metering", "time")


def run(node, cmd, now):
    ok = {"id": cmd["id"], "ok": True, "cmd": cmd["cmd"]}
    if cmd["cmd"] == "program":
        patch = {"programs": cmd["programs"]}
        if cmd["calendar"] is not None:
            patch["calendar"] = cmd["calendar"]
        # The command's schema checked both with the config's own section schemas (firmware/commands.py): the
        # change takes them as they are (a second check would copy a 40-step tree once more).
        change(node, patch, now, checked=("programs", "calendar"))
    else:
        try:
            change(node, cmd["set"], now)
        except Invalid as e:
            # Error paths name the field in the command the operator sent (set.report.telemetry_s), like the
            # command's own schema does (set.calendar), not in the config file.
            raise Invalid("set." + e.path if e.path else "set", e.reason)
        ok["restart"] = node.pending_reset is not None
    return ok


def change(node, patch, now, checked=()):
    """Validate, store and apply `patch`; raises Invalid (or MemoryError) with nothing changed."""
    new = configmod.change(node.cfg, patch, checked)
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
    node.store.copy(configmod.CONFIG_FILE, configmod.GOOD_FILE)
    node.store.write_json(configmod.CONFIG_FILE, new)  # streamed: the text is never whole in RAM
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
