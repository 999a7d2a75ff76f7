"""The node's persisted state (override, counters, faults, last good time, replay floor) on flash, within a budget.

Flash wears out; a lamp post lives 20 years. The state file may be written at most `daily_budget` times per
(node-clock) day, and the count itself is saved in the file ("wear"), so a node that restarts often cannot reset
its budget. The day's writes are shared like this:

- Background saves (counters every metering.save_interval_s, alarms, a new valid time) are coalesced: at most one
  per `min_gap_s`, and paced through the day to `daily_budget - command_reserve` by its end (80 of 100 at the
  defaults, about one per 18 minutes when counters keep changing). A power cut loses at most one such interval of
  energy, never corrupts: each write is a whole JSON document replaced atomically (FileStore).
- Command saves (an acknowledged `set`/`clear`, a signed command's replay floor) are written at once, before the
  reply: the durability rule (docs/OPERATIONS.md). They may use the whole budget, so at least `command_reserve`
  writes a day are theirs whatever the background did. When the day's budget is spent, `command_room()` is False
  and the command is refused ("flash write budget for today is spent") with nothing changed: acknowledging it
  without storing it would break the rule.
- `force` saves just before a restart the node chose are always written.
"""

import json

from firmware.compat import const

STATE_FILE = "state.json"
_DAY_S = const(86400)
BUDGET_SPENT = "flash write budget for today is spent: nothing changed, try after 00:00 UTC"


class StateFile:
    def __init__(self, store, daily_budget=100, min_gap_s=60, command_reserve=20):
        self.store = store
        self.daily_budget = daily_budget
        self.min_gap_s = min_gap_s
        self.command_reserve = command_reserve
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
        wear = doc.get("wear")
        if isinstance(wear, list) and len(wear) == 2 and isinstance(wear[0], int) and isinstance(wear[1], int):
            self._day, self.writes_today = wear[0], max(0, wear[1])
        return doc

    def _roll(self, now):
        day = now // _DAY_S
        if day != self._day:
            self._day = day
            self.writes_today = 0

    def due(self, now, periodic_due):
        """True when a background save should happen now (dirty, or the periodic counter save, and allowed)."""
        self._roll(now)
        background = self.daily_budget - self.command_reserve
        if self.writes_today >= 1 + (background - 1) * (now - self._day * _DAY_S) // _DAY_S:
            return False  # paced: the day's background share is spread over the whole day
        if periodic_due:
            return True
        if not self.dirty:
            return False
        return self._last_save is None or now - self._last_save >= self.min_gap_s or now < self._last_save

    def command_room(self, now):
        """True when a command's save fits in today's budget (checked before the command changes anything)."""
        self._roll(now)
        return self.writes_today < self.daily_budget

    def save(self, now, doc):
        """Write `doc` (the caller decided it is due, has room, or is forced). OSError when flash fails."""
        self._roll(now)
        doc["wear"] = [self._day, self.writes_today + 1]
        self.store.write_json(STATE_FILE, doc)  # streamed: no text copy, so a fragmented heap cannot refuse it
        self.dirty = False
        self._last_save = now
        self.writes_today += 1
