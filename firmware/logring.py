"""The node's last N log lines, kept in RAM and retrievable with the `get log` command (never holds secrets)."""


class LogRing:
    def __init__(self, size):
        self.size = size
        self._lines = []
        self.total = 0

    def add(self, t2k, text):
        if len(self._lines) >= self.size:
            self._lines.pop(0)
        self._lines.append("%d %s" % (t2k, text[:160]))
        self.total += 1
        print(text)  # the serial console / the unix-port log file

    def lines(self):
        return list(self._lines)
