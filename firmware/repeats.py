"""The replies of the last commands that acted, so that a repeat (a QoS 1 re-delivery) is answered again, not run
again. Signed nodes keep none: they refuse a repeat as `replayed` (firmware/signing.py).

Each is one record of a ByteRing (firmware/bytering.py says why): the id's length (1 byte), the id, the reply. Four
parts of `count` x 24 bytes (576 bytes each, 2.3 KB for 24 once full), made as they fill; as a list of (id, bytes)
pairs the same 24 replies took 4.6 KB, measured on the esp32-shaped build. When the newest part is full the oldest
part's replies go together. A part holds the longest reply a command that acts can get (an id of 40, an error of
256 characters: ~400 bytes); a longer one would not be kept.
"""

from firmware.bytering import ByteRing
from firmware.compat import const

_PER_REPLY = const(96)  # bytes of buffer per kept reply: a `set` reply with its id is ~80
_PARTS = const(4)


class RepeatCache:
    def __init__(self, count):
        self.count = count
        self._ring = ByteRing(count * _PER_REPLY // _PARTS, _PARTS)

    def remember(self, cmd_id, reply):
        """Keep `reply` (bytes) as the answer to `cmd_id` (a str of at most 255 bytes)."""
        key = cmd_id.encode()
        if len(key) > 255:
            return
        while self._ring.count >= self.count:
            self._ring.drop_oldest()
        self._ring.add(bytes((len(key),)), key, reply)

    def reply_for(self, cmd_id):
        """The reply kept for `cmd_id` (bytes), or None. The newest wins if an id was kept twice."""
        key = cmd_id.encode()
        k = len(key)
        found = None
        for r in self._ring.records():
            if r[0] == k and bytes(r[1:1 + k]) == key:
                found = bytes(r[1 + k:])
        return found

    def snapshot(self):
        """What is kept, as bytes (tests compare it before and after)."""
        return b"".join(bytes(r) for r in self._ring.records())
