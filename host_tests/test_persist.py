# runtimes: cpython micropython
"""The state file's write budget (firmware/persist.py): background saves paced, commands guaranteed room, the count
kept across restarts, and a command refused (not acknowledged unstored) once the day's budget is spent."""

import json

from firmware.persist import STATE_FILE, StateFile

DAY = 86400
D0 = 830000000 // DAY * DAY  # some UTC midnight (t2k)


class MemStore:
    """Files in a dict (a fake for the unit test: the real FileStore is tested in test_filestore.py)."""

    def __init__(self):
        self.files = {}
        self.writes = 0

    def read(self, name):
        return self.files.get(name)

    def write(self, name, data):
        self.files[name] = data
        self.writes += 1

    def write_json(self, name, doc):
        self.write(name, json.dumps(doc).encode())


def _background_day(sf, start, end, step=60):
    """Counters change all the time (a save due every 900 s), an alarm marks the state dirty every 120 s."""
    saves = []
    last_periodic = start
    for now in range(start, end, step):
        periodic = now - last_periodic >= 900
        if (now // 120) % 2 == 0:
            sf.dirty = True
        if sf.due(now, periodic):
            sf.save(now, {"n": len(saves)})
            saves.append(now)
            last_periodic = now
    return saves


def test_background_saves_stay_within_80_a_day_spread_over_the_day():
    sf = StateFile(MemStore())
    saves = _background_day(sf, D0, D0 + DAY)
    assert 70 <= len(saves) <= 80, len(saves)
    gaps = [b - a for a, b in zip(saves, saves[1:])]
    assert max(gaps) <= 1200, max(gaps)  # paced: no hours-long hole at the end of the day
    assert sf.writes_today == len(saves)


def test_commands_always_find_room_after_a_full_background_day():
    sf = StateFile(MemStore())
    _background_day(sf, D0, D0 + DAY - 60)
    now = D0 + DAY - 30
    taken = 0
    while sf.command_room(now):
        sf.save(now, {"cmd": taken})
        taken += 1
    assert taken >= 20 and sf.writes_today == 100
    assert not sf.command_room(now)  # the budget is spent: the node refuses the command (BUDGET_SPENT)
    assert sf.command_room(D0 + DAY)  # a new day


def test_early_in_the_day_commands_may_use_the_whole_budget():
    sf = StateFile(MemStore())
    n = 0
    while sf.command_room(D0 + 3600):
        sf.save(D0 + 3600, {})
        n += 1
    assert n == 100
    assert not sf.due(D0 + 7200, True)  # and background saves wait for the next day


def test_the_count_survives_a_restart():
    store = MemStore()
    sf = StateFile(store)
    for i in range(30):
        sf.save(D0 + 100 + i, {"i": i})
    doc = json.loads(store.read(STATE_FILE))
    assert doc["wear"] == [D0 // DAY, 30]
    again = StateFile(store)
    assert again.load()["i"] == 29
    assert again.writes_today == 30  # restarting cannot reset the budget
    assert again.command_room(D0 + 200)
    again.save(D0 + DAY + 5, {})  # the next day starts from zero
    assert again.writes_today == 1


def test_unreadable_wear_counts_from_zero():
    store = MemStore()
    store.files[STATE_FILE] = b'{"wear": "x", "override": null}'
    sf = StateFile(store)
    assert sf.load() == {"wear": "x", "override": None}
    assert sf.writes_today == 0
