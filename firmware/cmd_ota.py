"""`ota_begin`, `ota_status`, `ota_commit`, `ota_abort`: the command side of an update (firmware/ota.py stages it)."""


def run(node, cmd, now):
    kind = cmd["cmd"]
    agent = node.ota_agent()
    if kind == "ota_begin":
        r = agent.begin(cmd["manifest"], cmd["manifest_sig"], cmd["force"], schema_checked=True)
    elif kind == "ota_status":
        r = agent.status()
    elif kind == "ota_commit":
        r = agent.commit()
        if agent.reset_wanted:
            node.pending_reset = "ota"
    else:
        r = agent.abort()
    r["id"] = cmd["id"]
    return r
