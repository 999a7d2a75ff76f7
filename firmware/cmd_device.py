"""`time`, `identify` and `reboot`: the node as a device (its clock, its lamp as a beacon, its restart)."""

from firmware.commands import error_reply
from firmware.compat import ticks_add
from firmware.timebase import T2K_UNIX_OFFSET


def run(node, cmd, now):
    kind = cmd["cmd"]
    ok = {"id": cmd["id"], "ok": True, "cmd": kind}
    if kind == "time":
        accepted, why, delta = node.time.offer("cmd", cmd["utc"] - T2K_UNIX_OFFSET, now)
        if not accepted:
            return error_reply(cmd["id"], kind, "time refused: " + why)
        node.set_clock(now, delta, "command", why)
        ok["delta_s"] = delta
    elif kind == "identify":
        node.identify_until = ticks_add(node.board.clock.ticks_ms(), cmd["seconds"] * 1000)
        ok["seconds"] = cmd["seconds"]
    else:
        node.pending_reset = "safe" if cmd["safe"] else "reboot"  # after the reply has gone out
    return ok
