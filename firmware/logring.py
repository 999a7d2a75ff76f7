"""The node's last log lines, kept in RAM and retrievable with the `get log` command (never holds secrets).

One buffer made at boot holds them all, as a ring of bytes: `size` lines x 48 bytes (1.9 KB for the default 40).
A list of strings would take 4 KB once full (each line its own object), and would leave 40 small blocks scattered
through the heap as old lines go and new ones come, the holes a later large allocation cannot use (measured on the
esp32-shaped build, docs/DESIGN.md "Memory"). A line is cut at 160 characters; when long lines fill the buffer,
fewer than `size` are kept.

The buffer for the default 40 lines is made when this module is imported, which main.py does first of the firmware
(firmware/loadorder.py), while the heap is still in one piece: once the firmware is imported, a 2 x 40 KB heap has
no 1.9 KB run left (measured: the node then failed to boot at 80 KB). The first ring of that size takes it.
"""

from firmware.compat import const

_PER_LINE = const(48)  # bytes of buffer per configured line: a typical line ("<t2k> alarm ... raised") is 30-70
_MAX_TEXT = const(160)
_NL = const(10)
_DEFAULT_LINES = const(40)  # system.log_lines' default (firmware/config.py)
_made_early = [bytearray(_DEFAULT_LINES * _PER_LINE)]


def _buffer(n):
    """A zeroed buffer of n bytes: the one made at import if it fits and is still free, else a new one."""
    if _made_early and len(_made_early[0]) == n:
        return _made_early.pop()
    return bytearray(n)


class LogRing:
    def __init__(self, size):
        self.size = size
        self._buf = _buffer(size * _PER_LINE)
        self._head = 0  # where the oldest line starts
        self._used = 0  # bytes in use from there, wrapping at the end of the buffer; every line ends in \n
        self._count = 0
        self.total = 0

    def add(self, t2k, text):
        print(text)  # the serial console / the unix-port log file
        self.total += 1
        text = text[:_MAX_TEXT]
        if "\n" in text:
            text = text.replace("\n", " ")  # one entry, one line
        line = ("%d %s\n" % (t2k, text)).encode()
        buf = self._buf
        cap = len(buf)
        n = len(line)
        if n > cap:
            return  # cannot happen: log_lines is at least 8 (384 bytes), two of the longest lines
        while self._count and (self._count >= self.size or self._used + n > cap):
            self._drop_oldest()
        at = (self._head + self._used) % cap
        first = min(n, cap - at)
        buf[at:at + first] = line[:first] if first < n else line
        if first < n:
            buf[0:n - first] = line[first:]
        self._used += n
        self._count += 1

    def _drop_oldest(self):
        buf = self._buf
        end = buf.find(b"\n", self._head)
        if end < 0 or end >= self._head + self._used:  # the oldest line wraps round the end of the buffer
            end = len(buf) + buf.find(b"\n", 0)
        n = end + 1 - self._head
        self._head = (self._head + n) % len(buf)
        self._used -= n
        self._count -= 1

    def lines(self):
        """The lines kept, oldest first, as strings (made only for a `get log`)."""
        out = []
        buf = self._buf
        cap = len(buf)
        at = self._head
        left = self._used
        while left > 0:
            end = buf.find(b"\n", at)
            if end < 0 or end - at >= left:  # wraps round the end
                end = buf.find(b"\n", 0)
                piece = bytes(buf[at:]) + bytes(buf[:end])
                n = cap - at + end + 1
            else:
                piece = bytes(buf[at:end])
                n = end + 1 - at
            out.append(piece.decode())
            at = (at + n) % cap
            left -= n
        return out
