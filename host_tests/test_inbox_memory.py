# runtimes: cpython micropython
"""Refused commands cost no lasting memory: thousands of hostile payloads, each with a character never seen before
in the id, the command name, an unknown key or an enum value, go through Inbox.check; under MicroPython the live
heap afterwards is where it was (MicroPython interns every character a str iterator yields, for good: SECURITY.md).
On CPython only the refusals are checked; the heap part needs MicroPython's gc.mem_alloc."""

import gc
import sys

from firmware.commands import Inbox, Rejected

MICROPYTHON = sys.implementation.name == "micropython"


def odd(i):
    # U+1000 onwards, built from UTF-8 bytes (chr() would intern the character itself).
    return bytes([0xE1, 0x80 + ((i >> 6) & 0x3F), 0x80 + (i & 0x3F)])


def hostile(i):
    c = odd(i)
    kind = i % 4
    if kind == 0:
        return b'{"id": "a' + c + b'", "cmd": "get"}', "id: character"
    if kind == 1:
        return b'{"id": "x", "cmd": "g' + c + b'"}', "cmd: must be one of"
    if kind == 2:
        return b'{"id": "x", "cmd": "get", "k' + c + b'": 1}', ": unknown field"
    return b'{"id": "x", "cmd": "get", "what": "s' + c + b'"}', "what: must be one of"


def refuse(inbox, payload):
    try:
        inbox.check(payload, False, 0, False, 300)
    except Rejected as r:
        return r.reply["error"]
    raise AssertionError("accepted: %r" % payload)


def test_thousands_of_hostile_commands_leave_the_heap_as_it_was():
    inbox = Inbox(1024)
    for i in range(8):  # warm-up: every code path, its first allocations
        refuse(inbox, hostile(i)[0])
    gc.collect()
    before = gc.mem_alloc() if MICROPYTHON else 0
    for i in range(8, 3008):
        payload, reason = hostile(i)
        error = refuse(inbox, payload)
        assert reason in error, (payload, error)
    assert inbox.rejected == 3008
    if MICROPYTHON:
        gc.collect()
        grew = gc.mem_alloc() - before
        assert grew < 2048, grew
