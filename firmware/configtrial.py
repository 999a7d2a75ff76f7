"""A remote config change on trial: the boot after it must reach the broker, or the last good config comes back.

`trial.json` marks a config on trial (written just before the restart that applies it). The node confirms the
config once it reaches the broker with it (`confirm`), or rolls it back when `system.confirm_config_s` passes
first (`roll_back`); `rollback.json` then carries the reason to the next boot, which reports it once.
"""

import json

from firmware import config as configmod

TRIAL_FILE = "trial.json"
ROLLBACK_FILE = "rollback.json"  # why the last remote config change was undone; reported once, then removed


def mark(store):
    store.write(TRIAL_FILE, b'{"trial": true}')


def on_trial(store):
    return store.read(TRIAL_FILE) is not None


def confirm(store):
    """The new config reached the broker: it becomes the last known good one."""
    store.copy(configmod.CONFIG_FILE, configmod.GOOD_FILE)
    store.remove(TRIAL_FILE)


def roll_back(store, reason):
    store.copy(configmod.GOOD_FILE, configmod.CONFIG_FILE)
    store.write(ROLLBACK_FILE, json.dumps({"reason": reason}).encode())
    store.remove(TRIAL_FILE)


def take_rollback_notice(store):
    """The reason of a config rollback not yet reported, or None; reading it removes it."""
    data = store.read(ROLLBACK_FILE)
    if data is None:
        return None
    store.remove(ROLLBACK_FILE)
    try:
        reason = json.loads(data).get("reason")
    except (ValueError, AttributeError):
        reason = None
    return reason if isinstance(reason, str) else "unknown"
