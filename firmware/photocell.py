"""Photocell: lux filtering (median then EMA), on/off hysteresis, debounce and sensor health → dark / light / unknown.

Power-up behaviour: `dark` is None until the first valid reading; that first filtered reading decides at once (no
debounce), so a node rebooting at night lights at once. A first reading inside the hysteresis band counts as dark
(fail toward light). After that a change needs its condition (filtered lux < on_lux for dark, > off_lux for light)
held for `debounce_s`: a car's headlights or a passing cloud must not toggle the lamp. A break in the condition
shorter than `break_s` does not restart that wait — otherwise on a busy road at dusk every passing car would start
it again and the street would stay dark long after sunset (seen in the year simulation: 21:03 instead of 18:45 at
120 cars an hour). A longer break, or the condition reversing, cancels the pending change.

Health: `fail_count` consecutive missing (None) or implausible readings (outside min_lux..max_lux, not finite) make
`healthy` False and empty the filter (its samples are stale); one valid reading makes it True again. `dark` keeps
its last opinion through an outage so a flaky sensor cannot bypass the debounce; callers must check `healthy`.

Time jumps (now going backwards, or more than MAX_GAP_S between updates: a clock set by NTP, a long stall) restart a
pending debounce from the new now instead of finishing or stretching it on a false interval.

Sampling: only the first reading of each second (of `now`) is used; later ones in the same second are ignored. The
filter counts samples (the median of `window`, the EMA, `fail_count`), so without this its reach in time would shrink
with `system.control_ms`: at 100 ms the median would span half a second, and the same dusk with the same cars
switched 7 s later than at 1 s. At one sample a second it behaves alike at every control period of 1 s or less.
"""

from firmware.compat import const, is_finite
from firmware.schema import Dict, Float, Int, Invalid, Lazy

MAX_GAP_S = const(3600)


def _join(path, key):
    return path + "." + key if path else key


def _check(c, path):
    if not c["on_lux"] < c["off_lux"]:
        raise Invalid(_join(path, "on_lux"), "must be < off_lux")
    if c["alpha"] <= 0.0:
        raise Invalid(_join(path, "alpha"), "must be > 0")
    if not c["min_lux"] < c["max_lux"]:
        raise Invalid(_join(path, "min_lux"), "must be < max_lux")


def _schema():
    return Dict(
        {
            "on_lux": Float(0.0, 10000.0, default=20.0, doc="dark (lamp on) below this filtered lux"),
            "off_lux": Float(0.0, 10000.0, default=50.0, doc="light (lamp off) above this filtered lux"),
            "debounce_s": Int(0, 3600, default=120, doc="a change must hold this long"),
            "break_s": Int(0, 600, default=20,
                           doc="a shorter interruption (a passing car) does not restart debounce_s"),
            "window": Int(1, 9, default=5, doc="median over the last N valid samples (at most one a second)"),
            "alpha": Float(0.0, 1.0, default=0.3, doc="EMA weight of the newest median, 0 < alpha <= 1"),
            "min_lux": Float(-10.0, 1000.0, default=0.0, doc="readings below are implausible"),
            "max_lux": Float(1.0, 1000000.0, default=200000.0, doc="readings above are implausible (sun ≈ 120 klx)"),
            "fail_count": Int(1, 100, default=5, doc="consecutive bad readings before unhealthy"),
        },
        check=_check,
    )


SCHEMA = Lazy(_schema)


class Photocell:
    def __init__(self, cfg):
        self.on_lux = cfg["on_lux"]
        self.off_lux = cfg["off_lux"]
        self.debounce_s = cfg["debounce_s"]
        self.alpha = cfg["alpha"]
        self.min_lux = cfg["min_lux"]
        self.max_lux = cfg["max_lux"]
        self.fail_count = cfg["fail_count"]
        n = cfg["window"]
        self._ring = [0.0] * n  # preallocated: no allocation per sample
        self._sorted = []
        self._pos = 0
        self._ema = None
        self._bad = 0
        self._last = None  # now of the previous update
        self._since = None  # when the pending change's condition started holding
        self._broken = None  # when the pending change's condition last stopped holding (a short break is forgiven)
        self.break_s = cfg["break_s"]
        self.dark = None

    @property
    def healthy(self):
        return self._bad < self.fail_count

    @property
    def lux(self):
        """Filtered lux, or None before the first valid reading / after an outage."""
        return self._ema

    def _valid(self, lux):
        if lux is None or isinstance(lux, bool) or not isinstance(lux, (int, float)):
            return False
        return is_finite(lux) and self.min_lux <= lux <= self.max_lux

    def _median(self, x):
        # The ring holds the last N valid samples in arrival order, _sorted the same values in order. List methods
        # run in C, and the lists never outgrow N, so this allocates nothing once warm.
        ring = self._ring
        srt = self._sorted
        if len(srt) == len(ring):
            srt.remove(ring[self._pos])  # the oldest sample leaves the window
        ring[self._pos] = x
        self._pos = (self._pos + 1) % len(ring)
        srt.append(x)
        srt.sort()
        n = len(srt)
        if n & 1:
            return srt[n >> 1]
        return 0.5 * (srt[(n >> 1) - 1] + srt[n >> 1])

    def _reset_filter(self):
        del self._sorted[:]
        self._pos = 0
        self._ema = None

    # update() is split into small methods on purpose: MicroPython allocates a call's frame on the heap when a
    # function needs more than ~11 locals + stack slots, and update() runs on every sample.

    def update(self, lux, now):
        """Feed one reading (lux float or None on sensor error) taken at t2k `now`. Only the first reading of each
        second counts (see the module notes)."""
        last = self._last
        if now == last:
            return
        self._last = now
        if last is not None and (now < last or now - last > MAX_GAP_S) and self._since is not None:
            self._since = now  # a time jump: restart the pending debounce from the new now
        if self._valid(lux):
            self._bad = 0
            self._judge(self._filter(float(lux)), now)
        else:
            self._bad += 1
            if self._bad == self.fail_count:  # just became unhealthy: the filter's samples are stale
                self._reset_filter()
                self._since = None
                self._broken = None

    def _filter(self, x):
        m = self._median(x)
        if self._ema is None:
            self._ema = m
        else:
            self._ema += self.alpha * (m - self._ema)
        return self._ema

    def _judge(self, f, now):
        dark = self.dark
        if dark is None:
            self.dark = f < self.off_lux  # first opinion at once; inside the band counts as dark
            return
        if f < self.on_lux:
            want = True
        elif f > self.off_lux:
            want = False
        else:
            want = dark  # inside the hysteresis band: no change wanted
        if want == dark:
            if self._since is not None:
                if self._broken is None:
                    self._broken = now
                elif now - self._broken > self.break_s or now < self._broken:
                    self._since = None  # not a passing interruption: the change is off
                    self._broken = None
            return
        self._broken = None
        if self._since is None:
            self._since = now
        if now - self._since >= self.debounce_s:
            self.dark = want
            self._since = None
