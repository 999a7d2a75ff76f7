"""Lamp actuator: minimum level, fade, re-strike lockout, warm-up and dimming curve → (PWM duty, relay).

* Levels in (0, min_level) mean OFF: LED drivers flicker at very low PWM. A lit lamp lives in [min_level, 100].
* Every target change fades linearly in level space over `fade_ms` from the level being driven at that moment.
  Switching on starts the fade at min_level; switching off fades down to min_level, then opens the relay.
* Re-strike lockout (`restrike_s`, HPS): after the relay opens the lamp may not be re-struck for that long; a target
  > 0 meanwhile keeps the relay open, and the lamp comes on (and starts its fade) when the lockout ends. There is no
  lockout at boot: the previous off time is unknown, and an HPS ballast protects a hot lamp itself.
* Warm-up (`warmup_s`, HPS): for that long after the relay closes the lamp is driven at 100 % (dimming ballasts
  need full power to start the arc), then fades to the target. `level` reports 100 during warm-up.
* Curves: "linear" duty = level / 100. "log" (perceptual, DALI-like, three decades):
  duty = 10 ** (3 * (level - 100) / 100) for level > 0, 0 when off. duty(100) = 1, strictly increasing,
  duty(10) ≈ 0.0020 and duty(1) ≈ 0.0011: small but > 0.
* `pwm_invert` (active-low driver input) returns 1 - duty; the relay flag is never inverted.

All times are `ticks_ms` values and are compared with ticks_diff: the counter wraps at 2^30 on the device.
"""

from firmware.compat import ticks_add, ticks_diff
from firmware.schema import Bool, Dict, Enum, Float, Int, Lazy


def _schema():
    return Dict(
        {
            "min_level": Int(0, 100, default=10, doc="levels in (0, min_level) mean off"),
            "fade_ms": Int(0, 600000, default=1500, doc="duration of every level change"),
            "restrike_s": Int(0, 3600, default=0, doc="no re-strike for this long after off (HPS ~300, LED 0)"),
            "curve": Enum(("linear", "log"), default="linear", doc="level → duty"),
            "nominal_w": Float(0.0, 5000.0, default=60.0, doc="lamp power at 100 %"),
            "warmup_s": Int(0, 1800, default=0, doc="full power after switch-on (HPS ~240, LED 0)"),
            "pwm_invert": Bool(default=False, doc="active-low PWM input"),
        }
    )


SCHEMA = Lazy(_schema)


def log_duty(level):
    """The "log" curve: 0 → 0, else 10 ** (3 * (level - 100) / 100)."""
    if level <= 0:
        return 0.0
    return 10.0 ** (0.03 * (level - 100.0))


_CARRIED = ("target", "relay", "level", "_from", "_t0", "_fading", "_off_ms", "_on_ms")


class LampOutput:
    """`previous`: the LampOutput this one replaces after a live config change. What it drives now (level, relay,
    a fade in progress, the re-strike and warm-up clocks) carries over, so pushing a lamp setting to a lit street
    does not blink it off and fade it back in."""

    def __init__(self, cfg, previous=None):
        self.min_level = cfg["min_level"]
        self.fade_ms = cfg["fade_ms"]
        self.restrike_ms = cfg["restrike_s"] * 1000
        self.warmup_ms = cfg["warmup_s"] * 1000
        self.log = cfg["curve"] == "log"
        self.invert = cfg["pwm_invert"]
        self.nominal_w = cfg["nominal_w"]
        self.target = 0  # effective target level (after the min_level rule)
        self.relay = False
        self.level = 0.0  # level being driven now; 0 when the relay is open
        self._from = 0.0
        self._t0 = 0  # ticks when the running fade started
        self._fading = False
        self._off_ms = None  # ticks when the relay last opened (re-strike lockout), None: no lockout
        self._on_ms = None  # ticks when the relay last closed (warm-up)
        if previous is not None:
            for name in _CARRIED:
                setattr(self, name, getattr(previous, name))

    def _floor(self):
        # Lowest lit level: where a fade from off starts and a fade to off ends.
        return float(self.min_level)

    def set_target(self, level, now_ms):
        """Ask for `level` % (0..100); the change fades in over fade_ms from what is driven at now_ms."""
        self.step(now_ms)  # bring `level` up to now before starting from it
        if level <= 0 or level < self.min_level:
            level = 0
        elif level > 100:
            level = 100
        if level == self.target:
            return
        self.target = level
        self._from = self.level
        # A new level waits for the warm-up to end; switching off never waits.
        self._t0 = ticks_add(self._on_ms, self.warmup_ms) if level > 0 and self.warming(now_ms) else now_ms
        self._fading = True
        self.step(now_ms)  # switch on at once when nothing holds the lamp back

    def restrike_wait_ms(self, now_ms):
        """Milliseconds left of the re-strike lockout, 0 when the lamp may strike."""
        if self._off_ms is None:
            return 0
        left = self.restrike_ms - ticks_diff(now_ms, self._off_ms)
        # A negative elapsed time can only be a wrapped counter long after the lockout: it is over.
        if left <= 0 or left > self.restrike_ms:
            self._off_ms = None
            return 0
        return left

    def warming(self, now_ms):
        """True during the warm-up after switch-on (faults should not judge the lamp's power then)."""
        if self._on_ms is None:
            return False
        el = ticks_diff(now_ms, self._on_ms)
        if el < 0 or el >= self.warmup_ms:
            self._on_ms = None  # over; also keeps a wrapped counter from ever looking like warm-up
            return False
        return True

    def fading(self):
        """True while a fade or warm-up is in progress: the node then steps the output more often."""
        return self._fading

    def expected_w(self):
        """Electrical power the driven level should draw (linear in level), for metering/fault checks."""
        return self.nominal_w * self.level / 100.0 if self.relay else 0.0

    def step(self, now_ms):
        """Advance the output to now_ms → (duty 0.0..1.0, relay_on). Call it every loop iteration."""
        if self.target > 0 and not self.relay:
            if self.restrike_wait_ms(now_ms) > 0:
                return self._out()
            self.relay = True
            self._off_ms = None
            if self.warmup_ms > 0:
                # Warm-up is a fade that starts late, from 100 %: until then the clamp below holds 100.
                self._on_ms = now_ms
                self.level = 100.0
                self._t0 = ticks_add(now_ms, self.warmup_ms)
            else:
                self.level = self._floor()
                self._t0 = now_ms
            self._from = self.level
            self._fading = True
        if self.relay and self._fading:
            to = float(self.target) if self.target > 0 else self._floor()
            el = ticks_diff(now_ms, self._t0)
            if el < 0:
                el = 0  # warm-up still running
            if el >= self.fade_ms:
                self.level = to
                self._fading = False
            else:
                self.level = self._from + (to - self._from) * el / self.fade_ms
            if not self._fading and self.target == 0:
                self.relay = False
                self.level = 0.0
                self._on_ms = None
                self._off_ms = now_ms if self.restrike_ms > 0 else None
        return self._out()

    def duty(self):
        """PWM duty for the level being driven (curve and inversion applied)."""
        if not self.relay:
            d = 0.0
        elif self.log:
            d = log_duty(self.level)
        else:
            d = self.level / 100.0
        return 1.0 - d if self.invert else d

    def _out(self):
        return self.duty(), self.relay
