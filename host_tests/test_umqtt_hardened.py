# runtimes: cpython micropython
"""HardenedClient byte by byte: PUBLISH/PUBACK/PINGRESP/SUBACK as the MQTT 3.1.1 spec lays them out, against a fake
socket. Every expected packet is written out by hand here, never produced by the code under test."""

import sys

# umqtt.simple 1.3.4 does `import ustruct` and `from ubinascii import hexlify` (MicroPython's old u-prefixed names).
# MicroPython still resolves those names to struct/binascii, so there we leave sys.modules alone; CPython has no such
# modules, so there (and only when the import really fails) the standard ones are registered under the old names.
try:
    import ustruct  # noqa: F401
except ImportError:
    import struct

    sys.modules["ustruct"] = struct
try:
    import ubinascii  # noqa: F401
except ImportError:
    import binascii

    sys.modules["ubinascii"] = binascii

from firmware.umqtt_hardened import (  # noqa: E402  (needs the aliases above)
    MAX_PACKET_ID,
    HardenedClient,
    MQTTException,
    ProtocolError,
)
from firmware.umqtt_shims import SocketModule as _SocketModule  # noqa: E402
from firmware.umqtt_shims import SslModule as _SslModule  # noqa: E402
from mini import raises  # noqa: E402


# --- fakes ----------------------------------------------------------------------------------------------------------

_FILL = b"\xa5" * 256


class FakeSock:
    """A scripted stream. `script` is a list of segments: bytes (data), an int n (n filler bytes made on demand, so a
    1 MB payload costs no memory unless the code under test asks for it in one piece) or None ("nothing waiting"
    once). When the script is used up, read returns b"" if `eof` else None."""

    def __init__(self, script=(), eof=False):
        self.script = list(script)
        self.eof = eof
        self.reads = []  # n of every read(n)
        # readinto is summarised, not logged: a 1 MB drain is ~4000 calls, and a list of them would not fit the
        # 256 KB heap the MicroPython run gets.
        self.readinto_calls = 0
        self.readinto_max_n = 0  # the largest n asked for
        self.readinto_bufs = set()  # id() of every buffer passed
        self.readinto_max_buf = 0  # the largest buffer passed
        self.drained = 0  # bytes handed out through readinto
        self.writes = []  # the bytes of every write, copied at the time of the call
        self.written = bytearray()

    def _nothing(self):
        # The head of the script has no data: consume a None marker, or report end of script.
        if self.script:
            self.script.pop(0)
            return None
        return b"" if self.eof else None

    def read(self, n):
        self.reads.append(n)
        if n < 0:
            # MicroPython's stream read(n) allocates n bytes up front; measured on the unix port 1.29 with a real
            # socket: read(-2) raises MemoryError ("allocating 18446744073709551615 bytes").
            raise MemoryError("read(%d)" % n)
        out = b""
        while len(out) < n and self.script and self.script[0] is not None:
            seg = self.script[0]
            want = n - len(out)
            if isinstance(seg, int):
                k = seg if seg < want else want
                out += b"\xa5" * k
                rest = seg - k
            else:
                out += seg[:want]
                rest = seg[want:]
            if rest:
                self.script[0] = rest
            else:
                self.script.pop(0)
        if not out and n:
            return self._nothing()
        return out

    def readinto(self, buf, n=None):
        if n is None:
            n = len(buf)
        mv = memoryview(buf)
        got = 0
        while got < n and self.script and self.script[0] is not None:
            seg = self.script[0]
            want = n - got
            if isinstance(seg, int):
                k = seg if seg < want else want
                done = 0
                while done < k:  # filler in pieces of at most len(_FILL): no allocation of the asked size
                    step = k - done if k - done < len(_FILL) else len(_FILL)
                    mv[got + done:got + done + step] = _FILL[:step]
                    done += step
                rest = seg - k
            else:
                k = len(seg) if len(seg) < want else want
                mv[got:got + k] = seg[:k]
                rest = seg[k:]
            got += k
            if rest:
                self.script[0] = rest
            else:
                self.script.pop(0)
        if not got and n:
            r = self._nothing()
            got = None if r is None else 0
        self.readinto_calls += 1
        self.readinto_max_n = max(self.readinto_max_n, n)
        self.readinto_bufs.add(id(buf))
        self.readinto_max_buf = max(self.readinto_max_buf, len(buf))
        self.drained += got or 0
        return got

    def write(self, buf, n=None):
        data = bytes(buf) if n is None else bytes(buf[:n])  # copy now: the client reuses its header buffer
        self.writes.append(data)
        self.written.extend(data)
        return len(data)

    def pending(self):
        """The bytes still unread (filler counted as filler)."""
        out = b""
        for seg in self.script:
            if isinstance(seg, int):
                out += b"\xa5" * seg
            elif seg is not None:
                out += seg
        return out


class Receiver:
    def __init__(self):
        self.events = []

    def on_message(self, topic, msg, retained):
        self.events.append(("message", topic, msg, retained))

    def on_puback(self, pid):
        self.events.append(("puback", pid))

    def on_pingresp(self):
        self.events.append(("pingresp",))

    def on_oversize(self, topic, size):
        self.events.append(("oversize", topic, size))


def make(script=(), eof=False, max_payload=1024, ssl_params=None):
    rx = Receiver()
    c = HardenedClient("lamp-1", "broker.invalid", 1883, None, None, 60, ssl_params, rx, max_payload, 5)
    c.sock = FakeSock(script, eof)
    return c, c.sock, rx


# --- packets written from the MQTT 3.1.1 spec (§2.2 fixed header, §2.2.3 remaining length, §3.3 PUBLISH) ----------


def varlen(n):
    """Remaining Length, §2.2.3: 7 bits a byte, least significant group first, bit 7 set when another byte follows."""
    out = bytearray()
    while True:
        digit = n % 128
        n //= 128
        out.append(digit | 0x80 if n else digit)
        if not n:
            return bytes(out)


def u16(n):
    return bytes([n // 256, n % 256])


def incoming_publish(topic, payload, qos=0, retain=False, dup=False, pid=1):
    """A PUBLISH as the broker sends it, as a script list; an int payload stands for that many filler bytes."""
    first = 0x30 | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    n = payload if isinstance(payload, int) else len(payload)
    head = u16(len(topic)) + topic + (u16(pid) if qos else b"")
    body = [payload] if n else []
    return [bytes([first]) + varlen(len(head) + n) + head] + body


PINGRESP_PKT = b"\xd0\x00"


def test_spec_remaining_length_table_for_the_test_helper():
    # The boundaries of §2.2.3 Table 2.4, so the helper that builds incoming packets is itself checked.
    assert varlen(0) == b"\x00"
    assert varlen(127) == b"\x7f"
    assert varlen(128) == b"\x80\x01"
    assert varlen(16383) == b"\xff\x7f"
    assert varlen(16384) == b"\x80\x80\x01"
    assert varlen(2097151) == b"\xff\xff\x7f"
    assert varlen(2097152) == b"\x80\x80\x80\x01"
    assert varlen(268435455) == b"\xff\xff\xff\x7f"


# --- publish --------------------------------------------------------------------------------------------------------


def test_publish_qos0_exact_bytes():
    c, s, _ = make()
    pid = c.publish(b"lamp/1/state", b"on")
    # 0x30 PUBLISH qos 0; remaining 2 + 12 + 2 = 16; topic length 0x000C; topic; payload (no packet id at QoS 0)
    assert bytes(s.written) == b"\x30\x10\x00\x0clamp/1/state" + b"on"
    assert pid == 0
    assert s.reads == [] and s.readinto_calls == 0


def test_publish_qos0_retain_sets_bit0():
    c, s, _ = make()
    c.publish(b"t", b"x", True)
    assert bytes(s.written) == b"\x31\x04\x00\x01tx"


def test_publish_qos1_exact_bytes_returns_id_without_reading():
    c, s, _ = make()
    pid = c.publish(b"lamp/1/ev", b"{}", qos=1)
    # 0x32 PUBLISH qos 1; remaining 2 + 9 + 2 (packet id) + 2 = 15; packet id 1
    assert bytes(s.written) == b"\x32\x0f\x00\x09lamp/1/ev\x00\x01{}"
    assert pid == 1
    assert s.reads == [] and s.readinto_calls == 0  # QoS 1 does not wait for the PUBACK
    s.written = bytearray()
    assert c.publish(b"lamp/1/ev", b"{}", qos=1) == 2
    assert bytes(s.written) == b"\x32\x0f\x00\x09lamp/1/ev\x00\x02{}"


def test_publish_qos1_retain():
    c, s, _ = make()
    c.publish(b"a", b"", retain=True, qos=1)
    assert bytes(s.written) == b"\x33\x05\x00\x01a\x00\x01"


def test_publish_200_byte_payload_uses_two_length_bytes():
    payload = bytes(range(200))
    c, s, _ = make()
    c.publish(b"a/b", payload)
    # remaining 2 + 3 + 200 = 205 = 77 + 1 * 128 → 0x4D | 0x80 = 0xCD, then 0x01
    assert bytes(s.written) == b"\x30\xcd\x01\x00\x03a/b" + payload
    s.written = bytearray()
    c.publish(b"a/b", payload, qos=1)
    # 207 = 79 + 1 * 128 → 0xCF 0x01
    assert bytes(s.written) == b"\x32\xcf\x01\x00\x03a/b\x00\x01" + payload


def test_publish_three_length_bytes():
    payload = b"z" * (16384 - 5)
    c, s, _ = make()
    c.publish(b"a/b", payload)
    # remaining exactly 16384 → 0x80 0x80 0x01
    assert bytes(s.written[:8]) == b"\x30\x80\x80\x01\x00\x03a/"
    assert len(s.written) == 4 + 16384


def test_publish_header_written_with_length_not_slice():
    # MicroPython streams take (buffer, length): the header goes out of the preallocated buffer without a slice.
    c, s, _ = make()
    c.publish(b"t", b"x", qos=1)
    assert s.writes[0] == b"\x32\x06"
    assert s.writes[-1] == b"x"


def test_publish_dup_reuses_the_given_id():
    c, s, _ = make()
    pid = c.publish(b"t", b"m", qos=1, dup=True, pid=0x1234)
    # 0x3A = PUBLISH | DUP (0x08) | qos 1 (0x02); the id on the wire is the one given
    assert bytes(s.written) == b"\x3a\x06\x00\x01t\x12\x34m"
    assert pid == 0x1234
    assert c.publish(b"t", b"m", qos=1) == 1  # the retry did not consume a fresh id


def test_publish_dup_and_retain():
    c, s, _ = make()
    c.publish(b"t", b"m", retain=True, qos=1, dup=True, pid=7)
    assert bytes(s.written) == b"\x3b\x06\x00\x01t\x00\x07m"


def test_packet_id_wraps_to_1_never_0():
    c, s, _ = make()
    assert MAX_PACKET_ID == 65535
    c.pid = 65534
    assert c.publish(b"t", b"", qos=1) == 65535
    assert c.publish(b"t", b"", qos=1) == 1
    assert c.publish(b"t", b"", qos=1) == 2
    assert bytes(s.written) == (b"\x32\x05\x00\x01t\xff\xff" + b"\x32\x05\x00\x01t\x00\x01"
                                + b"\x32\x05\x00\x01t\x00\x02")


def test_packet_id_never_0_over_a_full_cycle():
    c, _, _ = make()
    seen_max = 0
    for _ in range(65536 + 10):
        p = c.next_pid()
        assert 1 <= p <= 65535
        if p > seen_max:
            seen_max = p
    assert seen_max == 65535
    assert c.pid == 11  # 65535 ids, then 1..11


# --- wait_msg: PUBLISH ----------------------------------------------------------------------------------------------


def test_wait_msg_publish_qos0():
    c, s, rx = make([b"\x30\x0b\x00\x06lamp/1" + b"on!"])
    assert c.wait_msg() == 0x30
    assert rx.events == [("message", b"lamp/1", b"on!", 0)]
    assert not rx.events[0][3]
    assert bytes(s.written) == b""  # QoS 0: no acknowledgement
    assert s.pending() == b""


def test_wait_msg_publish_retain_flag_honoured():
    c, s, rx = make([b"\x31\x05\x00\x01t" + b"on"])
    assert c.wait_msg() == 0x30
    assert len(rx.events) == 1
    kind, topic, msg, retained = rx.events[0]
    assert (kind, topic, msg) == ("message", b"t", b"on")
    assert retained  # a retained command must be recognisable so it never acts


def test_wait_msg_publish_qos1_acks_with_same_id():
    c, s, rx = make([b"\x32\x07\x00\x01t\xab\xcd" + b"on"])
    assert c.wait_msg() == 0x30
    assert rx.events == [("message", b"t", b"on", 0)]
    assert bytes(s.written) == b"\x40\x02\xab\xcd"  # PUBACK, remaining 2, the same packet id


def test_wait_msg_publish_qos1_retained():
    c, s, rx = make(incoming_publish(b"cmd", b"x", qos=1, retain=True, pid=513))
    assert c.wait_msg() == 0x30
    assert rx.events[0][:3] == ("message", b"cmd", b"x") and rx.events[0][3]
    assert bytes(s.written) == b"\x40\x02\x02\x01"


def test_wait_msg_publish_empty_payload():
    c, s, rx = make([b"\x30\x03\x00\x01t"])
    assert c.wait_msg() == 0x30
    assert rx.events == [("message", b"t", b"", 0)]


def test_wait_msg_publish_dup_bit_is_accepted():
    c, s, rx = make([b"\x3a\x06\x00\x01t\x00\x09m"])
    assert c.wait_msg() == 0x30
    assert rx.events == [("message", b"t", b"m", 0)]
    assert bytes(s.written) == b"\x40\x02\x00\x09"


def test_wait_msg_two_byte_length_publish():
    payload = bytes(range(200))
    c, s, rx = make([b"\x30\xcd\x01\x00\x03a/b" + payload], max_payload=200)
    assert c.wait_msg() == 0x30
    assert rx.events == [("message", b"a/b", payload, 0)]


def test_wait_msg_payload_at_max_is_delivered():
    c, s, rx = make(incoming_publish(b"t", b"q" * 64), max_payload=64)
    assert c.wait_msg() == 0x30
    assert rx.events == [("message", b"t", b"q" * 64, 0)]


def test_wait_msg_oversize_payload_drained_in_small_chunks():
    size = 1000000  # four times the whole 256 KB heap test_dual_runtime gives MicroPython
    c, s, rx = make(incoming_publish(b"lamp/1/cmd", size) + [PINGRESP_PKT], max_payload=1024)
    assert c.wait_msg() == 0x30
    assert rx.events == [("oversize", b"lamp/1/cmd", size)]
    assert s.drained == size
    assert s.readinto_calls >= size // 256 and s.readinto_max_n <= 256
    assert len(s.readinto_bufs) == 1 and s.readinto_max_buf <= 256  # one small preallocated buffer, reused
    assert max(s.reads) <= len(b"lamp/1/cmd")  # nothing was read as one big bytes object
    assert bytes(s.written) == b""
    # The drain took exactly the payload: the next packet parses.
    assert c.wait_msg() == 0xD0
    assert rx.events[-1] == ("pingresp",)


def test_wait_msg_oversize_qos1_is_still_acknowledged():
    # Not acking would make the broker redeliver the same oversized message forever.
    c, s, rx = make(incoming_publish(b"t", 5000, qos=1, pid=0x0102), max_payload=100)
    assert c.wait_msg() == 0x30
    assert rx.events == [("oversize", b"t", 5000)]
    assert s.drained == 5000
    assert bytes(s.written) == b"\x40\x02\x01\x02"


def test_wait_msg_payload_one_over_max_is_oversize():
    c, s, rx = make(incoming_publish(b"t", b"q" * 65) + [PINGRESP_PKT], max_payload=64)
    assert c.wait_msg() == 0x30
    assert rx.events == [("oversize", b"t", 65)]
    assert s.drained == 65
    assert s.pending() == PINGRESP_PKT


def test_wait_msg_long_topic_skipped_as_oversize():
    topic = b"x" * 129
    c, s, rx = make(incoming_publish(topic, b"payload") + [PINGRESP_PKT])
    assert c.wait_msg() == 0x30
    assert len(rx.events) == 1 and rx.events[0][0] == "oversize"
    assert rx.events[0][2] == len(b"payload")
    assert s.drained == 129 + 7  # topic and payload both went through the drain buffer
    assert max(s.reads) <= 2  # the first byte, the length, the topic length: the topic itself was never read whole
    assert s.pending() == PINGRESP_PKT
    assert c.wait_msg() == 0xD0


def test_wait_msg_long_topic_qos1_still_acked():
    c, s, rx = make(incoming_publish(b"y" * 300, b"p", qos=1, pid=42))
    assert c.wait_msg() == 0x30
    assert rx.events[0][0] == "oversize"
    assert bytes(s.written) == b"\x40\x02\x00\x2a"


def test_wait_msg_topic_of_128_is_delivered():
    topic = b"z" * 128
    c, s, rx = make(incoming_publish(topic, b"p"))
    assert c.wait_msg() == 0x30
    assert rx.events == [("message", topic, b"p", 0)]


def test_wait_msg_four_length_bytes_accepted():
    # 2 097 152 = 0x80 0x80 0x80 0x01: the largest length field MQTT allows has four bytes.
    size = 2097152 - 3
    script = incoming_publish(b"t", size)
    assert script[0][1:5] == b"\x80\x80\x80\x01"
    c, s, rx = make(script + [PINGRESP_PKT], max_payload=1024)
    assert c.wait_msg() == 0x30
    assert rx.events == [("oversize", b"t", size)]
    assert c.wait_msg() == 0xD0


def test_wait_msg_fifth_length_byte_is_protocol_error():
    c, s, rx = make([b"\x30\xff\xff\xff\xff\x7f\x00\x01t"])
    e = raises(ProtocolError, c.wait_msg)
    assert isinstance(e, OSError)  # the link handles it as a broken connection
    assert rx.events == []
    assert s.reads == [1, 1, 1, 1, 1]  # stopped after the fourth length byte: no further read


def test_wait_msg_qos2_is_protocol_error():
    c, s, rx = make(incoming_publish(b"t", b"m", qos=2, pid=5))
    raises(ProtocolError, c.wait_msg)
    assert bytes(s.written) == b""  # never a PUBACK (or PUBREC) for it


def test_wait_msg_qos2_is_refused_before_it_acts():
    c, s, rx = make(incoming_publish(b"t", b"m", qos=2, pid=5))
    raises(ProtocolError, c.wait_msg)
    assert rx.events == []


def test_wait_msg_qos3_is_protocol_error():
    c, s, rx = make([b"\x36\x05\x00\x01t\x00\x01"])
    raises(ProtocolError, c.wait_msg)
    assert rx.events == [] and bytes(s.written) == b""


def test_wait_msg_topic_longer_than_packet_is_protocol_error():
    c, s, rx = make([b"\x30\x03\x00\x05t" + PINGRESP_PKT])
    raises(ProtocolError, c.wait_msg)
    assert rx.events == []


def test_wait_msg_qos1_without_room_for_packet_id_is_protocol_error():
    # remaining length 3 = topic length field (2) + "t" (1): a QoS 1 PUBLISH must also hold a 2-byte packet id
    c, s, rx = make([b"\x32\x03\x00\x01t", PINGRESP_PKT, b"\x30\x03\x00\x01t"])
    try:
        c.wait_msg()
        outcome = "returned"
    except ProtocolError:
        outcome = "ProtocolError"
    except OSError:
        outcome = "OSError"
    except MemoryError:
        outcome = "MemoryError"
    assert min(s.reads) >= 0, "read with a negative size: %r" % (s.reads,)
    assert outcome == "ProtocolError", outcome
    assert rx.events == []


# --- wait_msg: other packets ----------------------------------------------------------------------------------------


def test_wait_msg_puback():
    c, s, rx = make([b"\x40\x02\x12\x34"])
    assert c.wait_msg() == 0x40
    assert rx.events == [("puback", 0x1234)]
    assert s.pending() == b""


def test_wait_msg_puback_bad_length():
    c, s, rx = make([b"\x40\x03\x12\x34\x00"])
    raises(ProtocolError, c.wait_msg)
    assert rx.events == []


def test_wait_msg_pingresp():
    c, s, rx = make([PINGRESP_PKT + b"\x40\x02\x00\x01"])
    assert c.wait_msg() == 0xD0
    assert rx.events == [("pingresp",)]
    assert s.pending() == b"\x40\x02\x00\x01"  # consumed exactly its two bytes


def test_wait_msg_suback_left_for_umqtt():
    c, s, rx = make([b"\x90\x03\x00\x01\x01"])
    assert c.wait_msg() == 0x90
    assert s.pending() == b"\x03\x00\x01\x01"  # umqtt.subscribe() reads these 4 itself
    assert rx.events == []


def test_subscribe_through_umqtt_with_our_wait_msg():
    # A PUBLISH that arrives before the SUBACK goes to our receiver; then umqtt reads the SUBACK body itself.
    c, s, rx = make(incoming_publish(b"t", b"early") + [b"\x90\x03\x00\x01\x01"])
    c.subscribe(b"lamp/1/cmd", 1)
    # SUBSCRIBE 0x82, remaining 2 (id) + 2 + 10 + 1 (qos) = 15, id 1, topic, requested QoS 1
    assert bytes(s.written) == b"\x82\x0f\x00\x01\x00\x0alamp/1/cmd\x01"
    assert rx.events == [("message", b"t", b"early", 0)]
    assert s.pending() == b""


def test_subscribe_refused_raises_mqtt_exception():
    c, s, rx = make([b"\x90\x03\x00\x01\x80"])
    raises(MQTTException, c.subscribe, b"lamp/1/cmd", 1)


def test_wait_msg_unknown_type_discarded_by_length():
    # 0xB0 UNSUBACK (we never unsubscribe) with its 2-byte id, then a reserved 0xF0 with a 300-byte body.
    c, s, rx = make([b"\xb0\x02\x00\x05", b"\xf0\xac\x02", 300, PINGRESP_PKT])
    assert c.wait_msg() == 0xB0
    assert s.pending()[:3] == b"\xf0\xac\x02"
    assert c.wait_msg() == 0xF0
    assert s.drained == 2 + 300
    assert s.readinto_max_n <= 256
    assert rx.events == []
    assert c.wait_msg() == 0xD0


def test_wait_msg_nothing_waiting_returns_none():
    c, s, rx = make([])
    assert c.wait_msg() is None
    assert s.reads == [1] and bytes(s.written) == b"" and rx.events == []


def test_wait_msg_eof_is_oserror():
    c, s, rx = make([], eof=True)
    raises(OSError, c.wait_msg)


def test_wait_msg_short_read_mid_payload_is_oserror():
    # the header promises 10 payload bytes, the peer closes after 4
    c, s, rx = make([b"\x30\x0d\x00\x01t" + b"abcd"], eof=True)
    e = raises(OSError, c.wait_msg)
    assert not isinstance(e, ProtocolError)  # a closed connection, not a malformed packet
    assert rx.events == []


def test_wait_msg_stall_mid_packet_is_oserror():
    # the rest of the packet is not there (non-blocking read gives None): never returns a half packet
    c, s, rx = make([b"\x40\x02\x00", None, b"\x01"])
    e = raises(OSError, c.wait_msg)
    assert not isinstance(e, ProtocolError)
    assert rx.events == []


def test_wait_msg_short_read_in_length_is_oserror():
    c, s, rx = make([b"\x30\x80"], eof=True)
    raises(OSError, c.wait_msg)


def test_wait_msg_short_drain_is_oserror():
    c, s, rx = make(incoming_publish(b"t", 100)[:1] + [40], eof=True, max_payload=10)
    raises(OSError, c.wait_msg)
    assert rx.events == []
    assert s.drained == 40


def test_wait_msg_never_calls_setblocking():
    # umqtt's own wait_msg calls setblocking(True) and so removes the socket timeout; FakeSock has no setblocking,
    # so any call would be an AttributeError here.
    c, s, rx = make(incoming_publish(b"t", b"m", qos=1) + [b"\x40\x02\x00\x01", PINGRESP_PKT])
    assert [c.wait_msg(), c.wait_msg(), c.wait_msg()] == [0x30, 0x40, 0xD0]


# --- the stand-in modules -------------------------------------------------------------------------------------------


def test_stand_ins_installed_in_sys_modules():
    import umqtt.simple

    assert sys.modules["usocket"] is _SocketModule
    assert sys.modules["ussl"] is _SslModule
    assert umqtt.simple.socket is _SocketModule  # umqtt's `import usocket as socket` got ours


def test_ssl_without_context_refused():
    e = raises(OSError, _SslModule.wrap_socket, object())
    assert "SSLContext" in str(e)
    raises(OSError, _SslModule.wrap_socket, object(), server_hostname="broker.example")


class FakeContext:
    def __init__(self):
        self.calls = []

    def wrap_socket(self, sock, server_hostname=None):
        self.calls.append((sock, server_hostname))
        return ("wrapped", sock)


def test_ssl_with_context_passes_server_hostname():
    ctx = FakeContext()
    raw = object()
    # umqtt 1.3.4 calls ussl.wrap_socket(sock, **ssl_params)
    params = {"context": ctx, "server_hostname": "broker.example"}
    assert _SslModule.wrap_socket(raw, **params) == ("wrapped", raw)
    assert ctx.calls == [(raw, "broker.example")]


def test_ssl_params_make_a_tls_client():
    ctx = FakeContext()
    rx = Receiver()
    c = HardenedClient("n", "h", 8883, None, None, 60, {"context": ctx, "server_hostname": "h"}, rx, 64, 5)
    assert c.ssl is True and c.ssl_params == {"context": ctx, "server_hostname": "h"}
    plain = HardenedClient("n", "h", 1883, None, None, 60, None, rx, 64, 5)
    assert plain.ssl is False and plain.ssl_params == {}
