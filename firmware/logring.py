"""The node's last log lines, kept in RAM and retrievable with the `get log` command (never holds secrets).

The lines are records of a ByteRing (firmware/bytering.py says why): 8 parts of `size` x 6 bytes (240 bytes each,
1.9 KB for the default 40 lines once full), made as they fill; a list of 40 strings took 4 KB. A line is cut at
160 characters (and shorter if its UTF-8 would not fit a part); when long lines fill the parts, fewer than `size`
are kept, and when the newest part is full the oldest part's lines go together (7/8 of them stay).
"""

from firmware.bytering import ByteRing
from firmware.compat import const

_PER_LINE = const(48)  # bytes of buffer per configured line: a typical line ("<t2k> alarm ... raised") is 30-70
_PARTS = const(8)
_MIN_PART = const(176)  # one line of 160 ASCII characters with its t2k, and the record's length
_MAX_TEXT = const(160)


class LogRing:
    def __init__(self, size):
        self.size = size
        self._ring = ByteRing(max(size * _PER_LINE // _PARTS, _MIN_PART), _PARTS)
        self.total = 0

    def add(self, t2k, text):
        print(text)  # the serial console / the unix-port log file
        self.total += 1
        text = text[:_MAX_TEXT]
        if "\n" in text:
            text = text.replace("\n", " ")  # one entry, one line
        while self._ring.count >= self.size:
            self._ring.drop_oldest()
        line = ("%d %s" % (t2k, text)).encode()
        while len(line) + 2 > self._ring.part_bytes:  # non-ASCII text: cut by characters until it fits
            text = text[:len(text) * 3 // 4]
            line = ("%d %s" % (t2k, text)).encode()
        self._ring.add(line)

    def lines(self):
        """The lines kept, oldest first, as strings (made only for a `get log`)."""
        return [bytes(r).decode() for r in self._ring.records()]
