# runtimes: cpython micropython
"""firmware/repeats.py: the replies of recent commands that acted, in one preallocated buffer."""

from firmware.repeats import RepeatCache


def _reply(i, pad=0):
    return b'{"id": "c-%d", "ok": true, "cmd": "set", "level": %d%s}' % (i, i % 101, b" " * pad)


def test_answers_the_last_count_ids_with_their_exact_replies():
    c = RepeatCache(24)
    for i in range(60):
        c.remember("c-%d" % i, _reply(i))
    for i in range(60):
        got = c.reply_for("c-%d" % i)
        assert got == (_reply(i) if i >= 36 else None), i
    assert c.reply_for("nobody") is None


def test_long_replies_push_out_more_of_the_oldest_and_nothing_is_torn():
    c = RepeatCache(24)  # four parts of 576 bytes
    kept = []
    for i in range(150):
        r = _reply(i, pad=(i * 37) % 450)
        c.remember("c-%d" % i, r)
        kept.append(("c-%d" % i, r))
        kept = kept[-30:]  # more than can be kept: the older ones are asserted gone with the rest
        found = [(k, v) for k, v in kept if c.reply_for(k) is not None]
        assert found and found[-1] == kept[-1]  # the newest is always kept
        assert len(found) <= 24
        for k, v in found:
            assert c.reply_for(k) == v  # whatever is kept comes back exactly
        assert [k for k, _ in found] == [k for k, _ in kept[-len(found):]]  # the newest ones, none skipped
        if i >= 24 and (i * 37) % 450 < 40:
            assert len(found) >= 2  # a short reply after long ones: the part before it still holds some


def test_a_reply_longer_than_the_buffer_is_not_kept_and_loses_nothing():
    c = RepeatCache(2)
    c.remember("a", b"{}")
    before = c.snapshot()
    c.remember("huge", b"x" * 500)
    assert c.reply_for("huge") is None and c.snapshot() == before and c.reply_for("a") == b"{}"


def test_the_same_id_twice_answers_with_the_newest():
    c = RepeatCache(8)
    c.remember("x", b"1")
    c.remember("x", b"2")
    assert c.reply_for("x") == b"2"


def test_non_ascii_ids_match_by_their_bytes():
    c = RepeatCache(8)
    c.remember("lampu-é", b"{}")
    assert c.reply_for("lampu-é") == b"{}" and c.reply_for("lampu-e") is None
