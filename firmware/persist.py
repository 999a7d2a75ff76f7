"""The node's persisted state (override, counters, faults, last good time) on flash, written within a wear budget.

Flash wears out; a lamp post lives 20 years. Writes are coalesced: a change marks the state dirty and it is written
at most once per `min_gap_s`, and never more than `daily_budget` times per (wall-clock) day, except `force` saves
just before a reboot. Counters are saved every metering.save_interval_s. A power cut therefore loses at most one
save interval of energy, never corrupts: each write is a whole JSON document replaced atomically (FileStore).
"""

import json

from firmware.compat import const

STATE_FILE = "state.json"
_DAY_S = const(86400)


class StateFile:
    def __init__(self, store, daily_budget=100, min_gap_s=60):
        self.store = store
        self.daily_budget = daily_budget
        self.min_gap_s = min_gap_s
        self.dirty = False
        self.writes_today = 0
        self._day = None
        self._last_save = None
        self.error = ""

    def load(self):
        """The saved document, or {} with `error` set when it is missing or unreadable."""
        data = self.store.read(STATE_FILE)
        if data is None:
            self.error = "no saved state"
            return {}
        try:
            doc = json.loads(data)
        except ValueError:
            self.error = "saved state is not JSON; starting from zero"
            return {}
        if not isinstance(doc, dict):
            self.error = "saved state is not an object; starting from zero"
            return {}
        return doc

    def due(self, now, periodic_due):
        """True when a save should happen now (dirty and allowed, or the periodic counter save is due)."""
        day = now // _DAY_S
        if day != self._day:
            self._day = day
            self.writes_today = 0
        if self.writes_today >= self.daily_budget:
            return False
        if periodic_due:
            return True
        if not self.dirty:
            return False
        return self._last_save is None or now - self._last_save >= self.min_gap_s or now < self._last_save

    def save(self, now, doc):
        self.store.write(STATE_FILE, json.dumps(doc).encode())
        self.dirty = False
        self._last_save = now
        self.writes_today += 1
