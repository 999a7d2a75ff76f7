"""The replies of the last commands that acted, so that a repeat (a QoS 1 re-delivery) is answered again, not run
again. Signed nodes keep none: they refuse a repeat as `replayed` (firmware/signing.py).

All of them live in one buffer made at boot: `count` x 96 bytes (2.3 KB for 24). As a list of (id, bytes) pairs
the same 24 replies took 4.6 KB (a tuple, an id string and a bytes object each, measured on the esp32-shaped
build), and that churn of 72 small long-lived objects is what cuts the heap into pieces too small for a large
command. Records follow each other oldest first: id length (1 byte), reply length (2 bytes), the id, the reply. The
oldest go when a new one needs room; a reply longer than the whole buffer is not kept.

Like the log ring's, the buffer is made when this module is imported, first of the firmware (firmware/logring.py
says why); the first cache takes it.
"""

from firmware.compat import const

_PER_REPLY = const(96)  # bytes of buffer per kept reply: a `set` reply with its id is ~80
_HEAD = const(3)
_COUNT = const(24)  # what firmware/commands.py keeps
_made_early = [bytearray(_COUNT * _PER_REPLY)]


class RepeatCache:
    def __init__(self, count):
        self.count = count
        n = count * _PER_REPLY
        self._buf = _made_early.pop() if _made_early and len(_made_early[0]) == n else bytearray(n)
        self._used = 0
        self._n = 0

    def remember(self, cmd_id, reply):
        """Keep `reply` (bytes) as the answer to `cmd_id` (a str of at most 255 bytes)."""
        key = cmd_id.encode()
        need = _HEAD + len(key) + len(reply)
        buf = self._buf
        if need > len(buf) or len(key) > 255:
            return
        while self._n and (self._n >= self.count or self._used + need > len(buf)):
            self._drop_oldest()
        at = self._used
        buf[at] = len(key)
        buf[at + 1] = len(reply) >> 8
        buf[at + 2] = len(reply) & 0xFF
        at += _HEAD
        buf[at:at + len(key)] = key
        at += len(key)
        buf[at:at + len(reply)] = reply
        self._used = at + len(reply)
        self._n += 1

    def _record_len(self, at):
        buf = self._buf
        return _HEAD + buf[at] + (buf[at + 1] << 8 | buf[at + 2])

    def _drop_oldest(self):
        n = self._record_len(0)
        left = self._used - n
        self._buf[0:left] = memoryview(self._buf)[n:self._used]  # memmove in place: no copy of the buffer is made
        self._used = left
        self._n -= 1

    def reply_for(self, cmd_id):
        """The reply kept for `cmd_id` (bytes), or None. The newest wins if an id was kept twice."""
        key = cmd_id.encode()
        buf = self._buf
        found = None
        at = 0
        while at < self._used:
            k = buf[at]
            if k == len(key) and buf[at + _HEAD:at + _HEAD + k] == key:
                found = at
            at += self._record_len(at)
        if found is None:
            return None
        k = buf[found]
        start = found + _HEAD + k
        return bytes(buf[start:start + (buf[found + 1] << 8 | buf[found + 2])])

    def snapshot(self):
        """What is kept, as bytes (tests compare it before and after)."""
        return bytes(self._buf[:self._used])
