"""`set` and `clear`: the operator's override of the program (the highest priority in firmware/control.py)."""

from firmware.timebase import T2K_UNIX_OFFSET


def run(node, cmd, now):
    kind = cmd["cmd"]
    previous = node.override
    if kind == "set":
        d = cmd["duration_s"]
        node.override = {"level": cmd["level"], "until": None if d is None else now + d}
    else:
        node.override = None
    try:
        node.control_step(node.board.clock.ticks_ms())  # act now: the reply tells the new level
    except MemoryError:
        node.override = previous  # refused as a whole: the next control step drives the old decision again
        raise
    node.state_file.dirty = True
    ok = {"id": cmd["id"], "ok": True, "cmd": kind, "level": node.level}
    if kind == "set":
        ok["until"] = None if node.override["until"] is None else node.override["until"] + T2K_UNIX_OFFSET
    else:
        ok["reason"] = node.reason
    return ok
