"""`calibrate`: drive the lamp through a ladder of levels while FaultMonitor learns the healthy current at each.

The learnt table becomes `faults.nominal_a` through an ordinary config change (firmware/cmd_config.py), so it is
validated and stored like anything an operator sends. The node holds a `Calibration` only while one runs; its
module is loaded for the command and kept alive by that object alone.
"""

from firmware import cold
from firmware.commands import error_reply
from firmware.compat import const
from firmware.schema import Invalid

LEVELS = (10, 20, 40, 60, 80, 100)
_HOLD_S = const(60)  # each level is held this long, plus the lamp's warm-up


def run(node, cmd, now):
    if node.calibration is not None:
        return error_reply(cmd["id"], "calibrate", "calibration already running")
    node.faults.calibrate_start(now)
    node.calibration = Calibration(now)
    return {"id": cmd["id"], "ok": True, "cmd": "calibrate", "levels": list(LEVELS),
            "seconds": len(LEVELS) * (_HOLD_S + node.cfg["lamp"]["warmup_s"])}


class Calibration:
    def __init__(self, now):
        self.index = 0
        self.since = now  # t2k the current level started

    def level(self, node, now):
        """The level calibration drives now, or None once it has ended (the table is then stored)."""
        if now - self.since >= _HOLD_S + node.cfg["lamp"]["warmup_s"] or now < self.since:
            self.index += 1
            self.since = now
        if self.index < len(LEVELS):
            return LEVELS[self.index]
        node.calibration = None
        table = node.faults.calibrate_stop(now)
        if len(table) < 2:
            node.event(now, {"kind": "calibration_failed", "reason": "no stable current readings"})
            return None
        try:
            cold.call("firmware.cmd_config", "change", node, {"faults": {"nominal_a": table}}, now)
        except (Invalid, OSError, MemoryError) as e:
            node.event(now, {"kind": "calibration_failed", "reason": str(e) or e.__class__.__name__})
            return None
        node.event(now, {"kind": "calibrated", "nominal_a": table})
        return None
