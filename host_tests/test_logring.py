# runtimes: cpython micropython
"""firmware/logring.py: the last log lines in one preallocated ring of bytes."""

from firmware.logring import LogRing



def _ring(size):
    return LogRing(size)


def test_keeps_the_newest_lines_in_order_up_to_the_count():
    r = _ring(8)
    for i in range(20):
        r.add(1000 + i, "line %d" % i)
    assert r.lines() == ["%d line %d" % (1000 + i, i) for i in range(12, 20)]
    assert r.total == 20


def test_lines_that_wrap_round_the_end_of_the_buffer_come_back_whole():
    r = _ring(8)
    seen = []
    for i in range(200):  # lengths that do not divide the buffer: every line boundary lands somewhere new
        text = "x" * (i % 37) + " event %d" % i
        r.add(i, text)
        seen.append("%d %s" % (i, text))
        got = r.lines()
        assert got == seen[-len(got):], i  # always a suffix of what was logged, nothing torn
        assert 1 <= len(got) <= 8
        if i >= 16:
            assert len(got) >= 4  # when the oldest part goes, the others stay


def test_long_lines_are_cut_and_keep_fewer_entries_not_a_broken_one():
    r = _ring(8)
    for i in range(10):
        r.add(i, "%d" % i + "y" * 400)
    got = r.lines()
    assert all(len(x) <= len("9 ") + 160 for x in got)
    assert got[-1].startswith("9 9yyy") and got[-1] == "9 " + "9" + "y" * 159
    assert [x.split(" ")[0] for x in got] == [str(i) for i in range(10 - len(got), 10)]


def test_a_newline_inside_a_message_stays_one_entry():
    r = _ring(8)
    r.add(5, "first\nsecond")
    r.add(6, "next")
    assert r.lines() == ["5 first second", "6 next"]


def test_non_ascii_text_survives_the_wrap():
    r = _ring(8)
    for i in range(30):
        r.add(i, "Jalan Sudirman é%dü" % i + "ß" * (i % 11))
    got = r.lines()
    assert got[-1] == "29 Jalan Sudirman é29ü" + "ß" * (29 % 11)
    for x in got:
        x.encode()  # decodes and re-encodes: no line was split inside a character


def test_empty_ring_has_no_lines():
    assert _ring(8).lines() == []


def test_a_long_non_ascii_line_is_cut_to_fit_a_part_and_still_decodes():
    r = _ring(8)  # parts of 176 bytes
    r.add(7, "é" * 300)  # 160 characters would be 320 bytes
    r.add(8, "after")
    got = r.lines()
    assert got[-1] == "8 after" and got[0].startswith("7 éé") and len(got[0].encode()) + 2 <= 176
