"""`set` and `clear`: the operator's override of the program (the highest priority in firmware/control.py).

Durability rule (docs/OPERATIONS.md): the override is in state.json before the reply says ok, so a power cut at
any instant after the reply boots with it — never with the one before. A command that cannot be stored (the day's
write budget spent, a flash error) is refused and the override stays as it was.
"""

from firmware.commands import error_reply
from firmware.persist import BUDGET_SPENT
from firmware.timebase import T2K_UNIX_OFFSET


def run(node, cmd, now):
    kind = cmd["cmd"]
    if not node.state_file.command_room(now):
        return error_reply(cmd["id"], kind, BUDGET_SPENT)
    previous = node.override
    if kind == "set":
        d = cmd["duration_s"]
        node.override = {"level": cmd["level"], "until": None if d is None else now + d}
    else:
        node.override = None
    mine = node.override
    try:
        node.save_state(now)
    except OSError as e:
        node.override = previous
        return error_reply(cmd["id"], kind, "cannot store the override: %s" % e)
    except MemoryError:
        node.override = previous  # refused as a whole; the file, if it was written, is rewritten by the retry
        raise
    try:
        node.control_step(node.board.clock.ticks_ms())  # act now: the reply tells the new level
    except MemoryError:
        # The override is stored: the next control step drives it, and node.on_message answers with the short
        # acknowledgement it gives a command whose only failure was its reply.
        node._applied = True
        raise
    ok = {"id": cmd["id"], "ok": True, "cmd": kind, "level": node.level}
    if kind == "set":
        # The override this command set: a short one may already have ended in the control step (the clock moved
        # on while the state was stored), and node.override is None then.
        ok["until"] = None if mine["until"] is None else mine["until"] + T2K_UNIX_OFFSET
    else:
        ok["reason"] = node.reason
    return ok
