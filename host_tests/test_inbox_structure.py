# runtimes: cpython micropython
"""The Inbox reads a command's brackets on the bytes before parsing (commands.structure_error): MicroPython's
json.loads would take a truncated object, or one closed with the wrong bracket, as whole — and the node would act
on a command cut off in transit."""

from firmware.commands import Inbox, Rejected

NOW = 849218400  # t2k
VALID = (b'{"id":"t1","cmd":"set","level":40,"duration_s":null}',
         b'{"id":"t2","cmd":"program","programs":{"default":[{"at":"sunset","offset_min":0,"level":100},'
         b'{"at":"sunrise","offset_min":0,"level":0}]},"calendar":[{"program":"default","weekdays":[5,6]}]}')


def _answer(payload):
    """The reply the Inbox gives (a dict), or None when the command would run."""
    try:
        Inbox(8192).check(payload, False, NOW, True, 300)
    except Rejected as r:
        return r.reply
    return None


def test_valid_commands_pass():
    for p in VALID:
        assert _answer(p) is None, _answer(p)
        assert _answer(b"  \n" + p + b" \r\n") is None  # whitespace around the object is JSON


def test_no_cut_of_a_command_is_obeyed():
    for p in VALID:
        for n in range(1, len(p)):
            r = _answer(p[:n])
            assert r is not None and r["ok"] is False, (p[:n], r)
            if p[:n].count(b"{") > p[:n].count(b"}"):  # an object left open: refused before it is parsed
                assert r["error"] == "payload is not JSON", (p[:n], r)


def test_wrong_closing_bracket_and_trailing_bytes_are_refused():
    for bad in (b'{"id":"w1","cmd":"set","level":5]',
                b'{"id":"w2","cmd":"program","programs":{"default":[{"at":"sunset","offset_min":0,"level":9}}}}',
                b'{"id":"w3","cmd":"set","level":5}}',
                b'{"id":"w4","cmd":"set","level":5} {"id":"w5","cmd":"set","level":6}',
                b'{"id":"w6","cmd":"set","level":5} x',
                b']{"id":"w7","cmd":"clear"}'):
        r = _answer(bad)
        assert r is not None and r["error"] == "payload is not JSON", (bad, r)


def test_brackets_and_quotes_inside_strings_are_only_text():
    r = _answer(b'{"id":"q1","cmd":"set","level":5,"note":"]}[{ \\" ]"}')
    assert r is not None and r["error"] != "payload is not JSON" and "note" in r["error"], r  # the schema's word
    assert _answer(b'{"id":"q2","cmd":"clear","sig":null,"ts":null}') is None


def test_depth_is_still_bounded():
    deep = b'{"id":"d1","cmd":"set","level":' + b"[" * 9 + b"1" + b"]" * 9 + b"}"
    assert _answer(deep)["error"] == "nested too deeply"
    assert _answer(b"[" * 5000)["error"] == "nested too deeply"
