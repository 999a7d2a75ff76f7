# runtimes: cpython micropython
"""firmware/bytering.py: records kept in a few parts made as they fill, the oldest part reused when all are full."""

from firmware.bytering import ByteRing


def _all(r):
    return [bytes(x) for x in r.records()]


def test_parts_are_made_only_as_records_need_them():
    r = ByteRing(64, 3)
    assert r._segs == [] and _all(r) == []
    r.add(b"a" * 10)
    assert len(r._segs) == 1
    for i in range(4):
        r.add(b"%d" % i * 10)
    assert len(r._segs) == 1 and r.count == 5  # 12 bytes a record: five fit in 64
    r.add(b"x" * 10)
    assert len(r._segs) == 2 and r.count == 6


def test_when_all_parts_are_full_the_oldest_part_goes_and_its_buffer_is_reused():
    r = ByteRing(40, 2)  # three 12-byte records a part
    made = []
    buffers = set()
    for i in range(20):
        made.append(b"rec%07d" % i)
        r.add(made[-1])
        buffers.update(id(s[0]) for s in r._segs)
        got = _all(r)
        assert got == made[-len(got):]  # the newest records, in order, none torn
        assert len(got) == len(made) if i < 6 else 4 <= len(got) <= 6
    assert len(buffers) == 2  # two parts, reused: nothing allocated after they were made


def test_drop_oldest_one_at_a_time_and_pieces_join_into_one_record():
    r = ByteRing(100, 2)
    for i in range(6):
        r.add(b"k%d:" % i, b"value", b"%d" % i)
    r.drop_oldest()
    r.drop_oldest()
    assert _all(r) == [b"k%d:value%d" % (i, i) for i in range(2, 6)] and r.count == 4
    for _ in range(10):
        r.drop_oldest()  # more drops than records: nothing breaks
    assert _all(r) == [] and r.count == 0
    r.add(b"again")
    assert _all(r) == [b"again"]


def test_a_record_longer_than_a_part_is_refused_and_changes_nothing():
    r = ByteRing(16, 2)
    r.add(b"small")
    assert r.add(b"x" * 15) is False
    assert _all(r) == [b"small"] and r.count == 1
