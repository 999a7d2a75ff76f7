# runtimes: cpython micropython
"""Refused commands cost no lasting memory: thousands of hostile payloads, each with a character never seen before
in the id, the command name, an unknown key, an enum value, a step time, a date or a signed-looking command's
text, go through Inbox.check; under MicroPython the live
heap afterwards is where it was (MicroPython interns every character a str iterator yields, for good: SECURITY.md).
On CPython only the refusals are checked; the heap part needs MicroPython's gc.mem_alloc."""

import gc
import sys

from firmware.commands import Inbox, Rejected
from firmware.signing import Verifier

MICROPYTHON = sys.implementation.name == "micropython"


def odd(i):
    # U+1000 onwards, built from UTF-8 bytes (chr() would intern the character itself).
    return bytes([0xE1, 0x80 + ((i >> 6) & 0x3F), 0x80 + (i & 0x3F)])


def hostile(i):
    c = odd(i)
    kind = i % 6
    if kind == 4:  # a step time: "HH:MM" is read character by character (five characters, the odd one third)
        return b'{"id": "x", "cmd": "program", "programs": {"default": [{"at": "12' + c + b'34", "level": 50}]}}', \
            "at: must be"
    if kind == 5:  # a calendar date, likewise
        return (b'{"id": "x", "cmd": "program", "programs": {"default": [{"at": "sunset", "level": 50}]}, '
                b'"calendar": [{"program": "default", "dates": ["12' + c + b'05"]}]}'), "must be a valid date"
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
    for i in range(12):  # warm-up: every code path, its first allocations
        refuse(inbox, hostile(i)[0])
    gc.collect()
    before = gc.mem_alloc() if MICROPYTHON else 0
    for i in range(12, 3012):
        payload, reason = hostile(i)
        error = refuse(inbox, payload)
        assert reason in error, (payload, error)
    assert inbox.rejected == 3012
    if MICROPYTHON:
        gc.collect()
        grew = gc.mem_alloc() - before
        assert grew < 2048, grew


def test_hostile_signed_looking_commands_leave_the_heap_as_it_was():
    # On a node that checks signatures, a command with a ts and a made-up sig is put into canonical form before the
    # signature can be found wrong: its strings (here a config value, any text at all) must not pile up either.
    inbox = Inbox(1024, Verifier("k" * 32, None, 300, "n1"))

    def payload(i):
        return (b'{"id": "c", "cmd": "config", "ts": 1700000000, "sig": "' + b"0" * 64 +
                b'", "set": {"report": {"note": "x' + odd(i) + b'"}}}')

    for i in range(8):
        refuse(inbox, payload(i))
    gc.collect()
    before = gc.mem_alloc() if MICROPYTHON else 0
    for i in range(8, 3008):
        assert refuse(inbox, payload(i)) == "bad signature"
    if MICROPYTHON:
        gc.collect()
        grew = gc.mem_alloc() - before
        assert grew < 2048, grew


def test_a_command_too_big_to_parse_is_refused_with_its_id_read_from_the_bytes():
    # json.loads itself runs out of memory: the id and command name are read from the raw bytes, so the sender
    # is told why instead of waiting for an answer.
    from firmware import commands

    assert commands.peek_string(b'{"id": "push-7", "cmd":"program"}', b'"id"') == "push-7"
    assert commands.peek_string(b'{"cmd" :  "program", "id":"x"}', b'"cmd"') == "program"
    assert commands.peek_string(b'{"id": 7}', b'"id"') is None
    assert commands.peek_string(b'{"id": "a\\"b"}', b'"id"') is None  # escapes: not guessed
    assert commands.peek_string(b'{"id": "' + b"x" * 41 + b'"}', b'"id"') is None
    assert commands.peek_string(b'{"x": 1}', b'"id"') is None
    assert commands.peek_string(b'{"id"::"a"}', b'"id"') is None


class _NoRoomJson:
    """json as it is when the heap cannot hold the parsed command."""

    @staticmethod
    def loads(_):
        raise MemoryError("memory allocation failed, allocating 136 bytes")


def test_inbox_answers_a_parse_that_runs_out_of_memory_with_the_commands_id():
    from firmware import commands

    saved = commands.json
    commands.json = _NoRoomJson
    try:
        Inbox(8192).check(b'{"id": "push-7", "cmd": "program", "programs": {}}', False, 0, True, 300)
        raise AssertionError("not refused")
    except Rejected as r:
        assert r.reply == {"id": "push-7", "ok": False, "cmd": "program", "error": commands.OUT_OF_MEMORY}
    finally:
        commands.json = saved
