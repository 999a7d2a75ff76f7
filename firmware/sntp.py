"""SNTP (RFC 4330) packets: the request a client sends and a careful reading of the server's answer.

The node judges every answer twice: here for what the packet says about itself (a server in client mode, stratum 0
"kiss-of-death", an unsynchronised leap indicator, a zero timestamp are refused), and in timebase.TimeKeeper for
whether the time is believable at all (1970/2000 epochs, jumps). Sending and waiting are the node's job: the loop
never blocks on a UDP answer.
"""

from firmware.compat import const

PACKET_LEN = const(48)
NTP_TO_T2K = 3155673600  # seconds from 1900-01-01 (NTP era 0) to 2000-01-01; not a const: it is not a small int
_ERA = 4294967296  # NTP seconds wrap every 2^32 s (next: 2036-02-07)
_MODE_SERVER = const(4)
_LI_UNSYNC = const(3)


def request(buf):
    """Fill a 48-byte buffer with a client request (LI 0, version 4, mode 3)."""
    for i in range(PACKET_LEN):
        buf[i] = 0
    buf[0] = 0x23


def parse(reply):
    """The server's transmit time as t2k seconds; ValueError with the reason when the answer cannot be used."""
    if reply is None or len(reply) < PACKET_LEN:
        raise ValueError("short NTP answer")
    if reply[0] & 7 != _MODE_SERVER:
        raise ValueError("not a server answer")
    if reply[0] >> 6 == _LI_UNSYNC:
        raise ValueError("server not synchronised")
    stratum = reply[1]
    if stratum == 0 or stratum > 15:
        raise ValueError("stratum %d (kiss-of-death or unsynchronised)" % stratum)
    secs = reply[40] << 24 | reply[41] << 16 | reply[42] << 8 | reply[43]
    if secs == 0:
        raise ValueError("zero transmit timestamp")
    if secs < 0x80000000:
        secs += _ERA  # past 2036-02-07: era 1 (an era-0 time this small would be before 1968)
    return secs - NTP_TO_T2K


def server_address(text):
    """"host" or "host:port" → (host, port)."""
    host, sep, port = text.partition(":")
    if not sep:
        return host, 123
    p = int(port)
    if not 0 < p < 65536:
        raise ValueError("bad NTP port %r" % port)
    return host, p
