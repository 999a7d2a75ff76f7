"""Crash-loop detection: counts boots that never became healthy; too many in a row starts safe mode.

boot.py calls `at_boot` before anything else; the node calls `healthy` once it has run well for a while (control
loop running, broker reached or long enough uptime). A power cut is not a crash: mains power at a lamp post is
switched off every morning in some cities, so power-on and brown-out resets do not count — only resets the firmware
did not ask for (watchdog, exception, panic) and soft resets that were not a requested reboot.
"""

import json

BOOT_FILE = "boot.json"
CRASH_LIMIT = 4  # abnormal boots in a row without becoming healthy
NORMAL_CAUSES = ("power_on", "brownout", "deepsleep")

decision = {"safe": False, "count": 0, "cause": "power_on", "why": ""}  # read by main.py after boot.py ran


def _read(store):
    try:
        doc = json.loads(store.read(BOOT_FILE) or b"{}")
        if isinstance(doc, dict) and isinstance(doc.get("count", 0), int):
            return doc
    except ValueError:
        pass
    return {}


def at_boot(store, cause):
    doc = _read(store)
    count = doc.get("count", 0)
    requested = doc.get("requested")  # "reboot" or "safe" left by the node before a reset it asked for
    if cause in NORMAL_CAUSES or requested:
        count = count if requested else 0
    else:
        count += 1
    safe = count >= CRASH_LIMIT or requested == "safe"
    decision["safe"] = safe
    decision["count"] = count
    decision["cause"] = cause
    decision["why"] = ("requested" if requested == "safe" else "%d abnormal resets" % count) if safe else ""
    store.write(BOOT_FILE, json.dumps({"count": count, "safe": safe}).encode())
    return decision


def request(store, kind):
    """Remember that the coming reset is asked for ("reboot" or "safe"), so it is not counted as a crash."""
    doc = _read(store)
    doc["requested"] = kind
    store.write(BOOT_FILE, json.dumps(doc).encode())


def healthy(store):
    store.write(BOOT_FILE, b'{"count": 0, "safe": false}')
