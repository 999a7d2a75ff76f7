"""`get`: the state, the config (secrets hidden), the log ring or the counters."""

import gc

from firmware import config as configmod
from firmware.compat import mem_free


def run(node, cmd, now):
    ok = {"id": cmd["id"], "ok": True, "cmd": "get"}
    what = cmd["what"]
    if what == "state":
        ok["state"] = node.state_doc(now)
    elif what == "config":
        ok["config"] = configmod.redact(node.cfg)
    elif what == "log":
        ok["log"] = node.log.lines()
    else:
        link = node.link
        ok["counters"] = node.meter.counters()
        ok["link"] = {"connects": link.connects, "drops": link.drops, "failures": link.failures,
                      "oversize": link.oversize, "rejected": node.inbox.rejected,
                      "last_error": link.last_error, "tx_bytes": link.tx_bytes, "rx_bytes": link.rx_bytes}
        ok["events"] = {"produced": node.seq, "acked": link.acked_events, "queued": link.queued(),
                        "dropped": link.dropped_events}
        ok["flash"] = {"state_writes_today": node.state_file.writes_today, "store_writes": node.store.writes}
        gc.collect()  # free heap means the room left for live data, not what garbage happens to hold
        ok["memory"] = {"heap_free": mem_free(), "heap_low": node.heap_low, "refused": node.memory_refusals,
                        "loop_errors": node.memory_errors}
    return ok
