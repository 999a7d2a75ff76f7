# runtimes: cpython micropython
"""SNTP packets: the request, and every way an answer can be refused before TimeKeeper even sees it."""

from mini import raises

from firmware import sntp
from firmware.timebase import days_from_civil

T2K_2026 = days_from_civil(2026, 11, 28) * 86400 + 3600


def answer(t2k, mode=4, li=0, stratum=2, length=48):
    secs = (t2k + sntp.NTP_TO_T2K) % 4294967296
    b = bytearray(length)
    b[0] = li << 6 | 4 << 3 | mode
    b[1] = stratum
    if length >= 44:
        b[40] = secs >> 24 & 0xFF
        b[41] = secs >> 16 & 0xFF
        b[42] = secs >> 8 & 0xFF
        b[43] = secs & 0xFF
    return bytes(b)


def test_request_is_a_version_4_client_packet():
    buf = bytearray(b"\xff" * 48)
    sntp.request(buf)
    assert buf[0] == 0x23 and bytes(buf[1:]) == bytes(47)


def test_a_good_answer_gives_t2k():
    assert sntp.parse(answer(T2K_2026)) == T2K_2026


def test_after_the_2036_era_rollover():
    t = days_from_civil(2040, 1, 1) * 86400
    assert sntp.parse(answer(t)) == t


def test_refusals():
    assert "short" in str(raises(ValueError, sntp.parse, answer(T2K_2026, length=40)))
    assert "server" in str(raises(ValueError, sntp.parse, answer(T2K_2026, mode=3)))
    assert "synchronised" in str(raises(ValueError, sntp.parse, answer(T2K_2026, li=3)))
    assert "kiss-of-death" in str(raises(ValueError, sntp.parse, answer(T2K_2026, stratum=0)))
    assert "zero" in str(raises(ValueError, sntp.parse, bytes([0x24, 2]) + bytes(46)))
    raises(ValueError, sntp.parse, None)


def test_server_address():
    assert sntp.server_address("pool.example") == ("pool.example", 123)
    assert sntp.server_address("127.0.0.1:12345") == ("127.0.0.1", 12345)
    raises(ValueError, sntp.server_address, "h:0")
    raises(ValueError, sntp.server_address, "h:x")
