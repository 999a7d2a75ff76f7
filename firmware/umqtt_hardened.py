"""umqtt.simple with its sharp edges filed off: bounded reads, non-blocking QoS 1, packet-id wrap, TLS on modern ports.

We keep micropython-lib's umqtt.simple (the pinned 1.3.4 bytes in lib/umqtt/) for what it does well — building the
CONNECT packet with Last Will and credentials, SUBSCRIBE, PINGREQ, DISCONNECT — and replace only the two methods
whose behaviour cannot be left alone on a lamp post:

- `publish`: the original waits for the PUBACK of a QoS 1 message in a loop with no timeout and never wraps the
  packet id. Ours writes the packet and returns its id; mqtt_link.Link tracks the acknowledgement, retries with the
  DUP flag and gives up by reconnecting.
- `wait_msg`: the original allocates a whole incoming payload in one read (a 1 MB message is a MemoryError), loops
  forever on a bad length, and calls `setblocking(True)` which removes any timeout. Ours reads a bounded length
  into one receive buffer made when the node starts (the receiver gets the payload as a bytearray sharing that
  buffer, valid during the call: `compat.head`), drains oversized packets through a small preallocated buffer,
  reports PUBACK/PINGRESP to the link, and tells the receiver whether a message was retained (umqtt drops that
  flag, but a retained command must never act).

And one method umqtt does not have: `publish_json` writes a JSON document into the socket through a small buffer
(its length counted by a first pass, since MQTT puts it before the payload). After hours of running, a 112 KB
ESP32 heap has 60 KB free in runs of at most ~3 KB (measured on the esp32-shaped build): a `get config` reply
serialised into one string would not find room, written in pieces it needs none.

Two modules umqtt imports (`usocket`, `ussl`) are supplied by firmware/umqtt_shims.py, imported first.
"""

import io
import json

from firmware.compat import const, head
from firmware.umqtt_shims import SocketModule  # puts usocket and ussl in place: before umqtt.simple, always
from umqtt.simple import MQTTClient, MQTTException  # noqa: F401  (MQTTException: for the link's error list)

MAX_PACKET_ID = const(65535)
_DRAIN_CHUNK = const(256)
_OUT_CHUNK = const(512)

# Packet types the receive path distinguishes (upper nibble of the fixed header).
PUBLISH = const(0x30)
PUBACK = const(0x40)
SUBACK = const(0x90)
PINGRESP = const(0xD0)


class JsonOut(io.IOBase):
    """The stream json.dump writes a document to: counts its bytes, or sends them on through a fixed buffer."""

    def __init__(self, buf):
        self.buf = buf
        self.view = memoryview(buf)
        self.fill = 0
        self.count = 0
        self.sock = None  # None: only count

    def write(self, data):
        if isinstance(data, str):  # CPython's json writes text; MicroPython's writes bytes
            data = data.encode()
        k = len(data)
        self.count += k
        if self.sock is None:
            return k
        size = len(self.buf)
        if self.fill + k > size:
            self.flush()
        if k >= size:
            self.sock.write(data)  # one piece larger than the buffer: a long string value, already in memory
            return k
        self.view[self.fill:self.fill + k] = data
        self.fill += k
        return k

    def flush(self):
        if self.fill:
            self.sock.write(self.buf, self.fill)  # MicroPython streams take (buffer, length): no slice made
            self.fill = 0


def json_size(doc, out):
    """The bytes json.dump(doc) makes, counted without building them."""
    out.sock = None
    out.count = 0
    json.dump(doc, out)
    return out.count


class ProtocolError(OSError):
    """The broker sent something we cannot parse; the link treats it like a broken connection."""


class Buffers:
    """What the client reads and writes through, made once when the node starts (fresh room is never needed later)."""

    def __init__(self, max_payload, rx=None):
        self.rx = rx if rx is not None and len(rx) >= max_payload else bytearray(max_payload)
        self.out = JsonOut(bytearray(_OUT_CHUNK))
        self.drain = bytearray(_DRAIN_CHUNK)


class HardenedClient(MQTTClient):
    """umqtt.simple.MQTTClient with bounded reads and a non-blocking QoS 1 publish.

    `receiver` gets `on_message(topic, msg, retained)`, `on_puback(pid)`, `on_pingresp()` and
    `on_oversize(topic, size)`. Incoming payloads larger than `max_payload` are read and discarded.
    """

    def __init__(self, client_id, server, port, user, password, keepalive, ssl_params, receiver, max_payload,
                 io_timeout_s, buffers=None):
        MQTTClient.__init__(self, client_id, server, port, user, password, keepalive,
                            ssl=ssl_params is not None, ssl_params=ssl_params or {})
        self.receiver = receiver
        self.max_payload = max_payload
        self.io_timeout_s = io_timeout_s
        self._hdr = bytearray(7)  # fixed header (5) + packet id (2), reused for every publish
        # The buffers outlive the connection (`Buffers`, made once by the link): a reconnect on a fragmented heap
        # must not need fresh room.
        b = buffers or Buffers(max_payload)
        self._rx = b.rx
        self._out = b.out
        self._drain = b.drain
        self.set_callback(self._umqtt_callback_unused)

    def _umqtt_callback_unused(self, topic, msg):
        # umqtt.subscribe() insists that a callback is set; our wait_msg never calls it.
        pass

    def connect(self, clean_session=True):
        SocketModule.timeout_s = self.io_timeout_s
        try:
            present = MQTTClient.connect(self, clean_session)
        except AssertionError:  # umqtt checks the CONNACK with assert
            raise ProtocolError("bad CONNACK")
        self.pid = 0
        return present

    def next_pid(self):
        self.pid = self.pid + 1 if self.pid < MAX_PACKET_ID else 1
        return self.pid

    def publish(self, topic, msg, retain=False, qos=0, dup=False, pid=0, follows=0):
        """Write one PUBLISH packet. QoS 1 does not wait for PUBACK: the caller gets the packet id back.
        `follows`: payload bytes the caller writes itself after this (publish_json)."""
        hdr = self._hdr
        hdr[0] = 0x30 | (8 if dup else 0) | (qos << 1) | (1 if retain else 0)
        size = 2 + len(topic) + len(msg) + follows + (2 if qos else 0)
        i = 1
        while size > 0x7F:
            hdr[i] = (size & 0x7F) | 0x80
            size >>= 7
            i += 1
        hdr[i] = size
        self.sock.write(hdr, i + 1)  # MicroPython streams take (buffer, length): no slice is allocated
        self._send_str(topic)
        if qos:
            if not pid:
                pid = self.next_pid()
            hdr[0] = pid >> 8
            hdr[1] = pid & 0xFF
            self.sock.write(hdr, 2)
        if msg:
            self.sock.write(msg)
        return pid

    def publish_json(self, topic, doc, retain=False):
        """A QoS 0 PUBLISH of json.dumps(doc), written in pieces. Returns the payload's length in bytes."""
        out = self._out
        n = json_size(doc, out)
        self.publish(topic, b"", retain, 0, False, 0, n)
        out.sock = self.sock
        try:
            json.dump(doc, out)
            out.flush()
        finally:
            out.sock = None
            out.fill = 0
        return n

    def _read_exact(self, n):
        data = self.sock.read(n)
        if data is None or len(data) != n:
            raise OSError("connection closed")
        return data

    def _read_len(self):
        n = 0
        shift = 0
        for _ in range(4):  # MQTT allows at most four length bytes
            b = self._read_exact(1)[0]
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7
        raise ProtocolError("bad remaining length")

    def _discard(self, n):
        buf = self._drain
        while n > 0:
            k = n if n < len(buf) else len(buf)
            got = self.sock.readinto(buf, k)
            if not got:
                raise OSError("connection closed")
            n -= got

    def wait_msg(self):
        """Read one packet. The first byte must already be waiting (the link polls), the rest arrives within the
        socket timeout or the read raises. Returns the packet type, or None when nothing was waiting."""
        first = self.sock.read(1)
        if first is None:
            return None
        if first == b"":
            raise OSError("connection closed")
        op = first[0]
        kind = op & 0xF0
        if kind == PINGRESP:
            self._read_len()
            self.receiver.on_pingresp()
            return PINGRESP
        if kind == SUBACK:
            return op  # umqtt.subscribe() reads the rest itself
        if kind == PUBACK:
            if self._read_len() != 2:
                raise ProtocolError("bad PUBACK")
            b = self._read_exact(2)
            self.receiver.on_puback(b[0] << 8 | b[1])
            return PUBACK
        if kind != PUBLISH:
            self._discard(self._read_len())
            return op
        size = self._read_len()
        b = self._read_exact(2)
        topic_len = b[0] << 8 | b[1]
        qos = (op >> 1) & 3
        # Checked before anything is read or acted on: a QoS 1 packet too short for its packet id would otherwise
        # read a negative length (MemoryError on MicroPython), and QoS 2 is never subscribed to.
        if topic_len + (4 if qos else 2) > size or qos >= 2:
            raise ProtocolError("bad PUBLISH")
        if topic_len > 128:  # no topic of ours is that long: not for us, skip it whole
            self._discard(topic_len)
            topic = b""
        else:
            topic = self._read_exact(topic_len)
        size -= topic_len + 2
        pid = 0
        if qos:
            b = self._read_exact(2)
            pid = b[0] << 8 | b[1]
            size -= 2
        if size > self.max_payload or not topic:
            self._discard(size)
            self.receiver.on_oversize(topic, size)
        else:
            rx = self._rx
            view = memoryview(rx)
            got = 0
            while got < size:
                k = self.sock.readinto(view[got:size])
                if not k:
                    raise OSError("connection closed")
                got += k
            self.receiver.on_message(topic, head(rx, size), op & 1)
        if qos:
            ack = self._hdr
            ack[0] = 0x40
            ack[1] = 2
            ack[2] = pid >> 8
            ack[3] = pid & 0xFF
            self.sock.write(ack, 4)
        return PUBLISH

