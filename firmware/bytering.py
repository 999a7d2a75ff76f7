"""Records of bytes, oldest first, kept in a few equal buffers ("parts") that are made only as they fill up. When
all parts are full, the oldest part is emptied and reused for the newest records.

Why parts and not one buffer or one object per record: one object per record (the log's 40 lines, the 24 replies
kept for repeats) costs twice the bytes and leaves dozens of small holes across the heap as records come and go;
one buffer of the whole size needs a 2 KB run that a fragmented heap may not have (measured on the esp32-shaped
build: made after the firmware was imported, it failed the boot at 80 KB), and made up front it holds its full
size from the first second (at 68 KB the node then could not boot at all). A part is a few hundred bytes, made
when the records first need it.

A record is stored as its length (2 bytes) and its bytes; one longer than a part is refused.
"""


class ByteRing:
    def __init__(self, part_bytes, parts):
        self.part_bytes = part_bytes
        self.parts = parts
        self._segs = []  # [buffer, start, end, records] of each part in use (never empty), oldest first
        self._spare = []  # buffers of parts emptied by drop_oldest, for the next part needed
        self.count = 0

    def add(self, *pieces):
        """Append one record made of `pieces` (bytes-like, written one after the other). False when it is longer
        than a part (nothing is kept then, nothing dropped)."""
        n = 2
        for p in pieces:
            n += len(p)
        if n > self.part_bytes:
            return False
        segs = self._segs
        if not segs or segs[-1][2] + n > self.part_bytes:
            if self._spare:
                buf = self._spare.pop()
            elif len(segs) + len(self._spare) < self.parts:
                buf = bytearray(self.part_bytes)
            else:
                old = segs.pop(0)  # all parts full: the oldest one's records go, its buffer takes the newest
                self.count -= old[3]
                buf = old[0]
            segs.append([buf, 0, 0, 0])
        seg = segs[-1]
        buf, at = seg[0], seg[2]
        buf[at] = (n - 2) >> 8
        buf[at + 1] = (n - 2) & 0xFF
        at += 2
        for p in pieces:
            buf[at:at + len(p)] = p
            at += len(p)
        seg[2] = at
        seg[3] += 1
        self.count += 1
        return True

    def drop_oldest(self):
        """Forget the oldest record."""
        if not self._segs:
            return
        seg = self._segs[0]
        buf, at = seg[0], seg[1]
        seg[1] = at + 2 + (buf[at] << 8 | buf[at + 1])
        seg[3] -= 1
        self.count -= 1
        if seg[3] == 0:
            self._segs.pop(0)
            self._spare.append(buf)

    def records(self):
        """Every record, oldest first, as a memoryview into its part (valid until the next add or drop)."""
        for buf, start, end, _ in self._segs:
            mv = memoryview(buf)
            at = start
            while at < end:
                n = buf[at] << 8 | buf[at + 1]
                yield mv[at + 2:at + 2 + n]
                at += 2 + n
