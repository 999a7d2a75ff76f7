"""Lamp metering (TALQ LampMonitor counters): energy, burn hours, switch-on and supply-loss counts, persisted."""

from firmware.compat import const, is_finite
from firmware.schema import Dict, Float, Int, Invalid, Lazy

# Energy is kept as int whole Wh + int nano-Wh remainder. ESP32 floats are 32-bit (24-bit mantissa): a float
# total of 525 600 Wh has a step of 0.0625 Wh, so adding 0.0167 Wh per second would be lost entirely. Only the
# per-step increment (small) is ever a float; every running total is an int. 10^9 nWh < 2^30, so the remainder
# stays a small int on 32-bit ports and never allocates.
_NWH_PER_WH = const(1000000000)
_SNAPSHOT_VERSION = const(2)  # 2 added the estimated energy; a version 1 snapshot is still read
_BIG = const(0x3FFFFFFF)  # largest small int on a 32-bit port: a counter beyond it is not plausible data


def _accumulate(total, e):
    """Adds `e` Wh (a small float) to `total` = [whole Wh, nWh] in place: the totals stay ints."""
    whole = int(e)
    total[0] += whole
    total[1] += int((e - whole) * _NWH_PER_WH + 0.5)
    if total[1] >= _NWH_PER_WH:
        total[1] -= _NWH_PER_WH
        total[0] += 1


def _wh(total):
    return total[0] + total[1] / _NWH_PER_WH


def _schema():
    return Dict(
        {
            "save_interval_s": Int(300, 86400, 900, doc="seconds between counter saves; the state file paces "
                                                         "background saves to 80 a day (firmware/persist.py)"),
            "nominal_voltage": Float(50, 500, 220.0, doc="mains voltage assumed where a measurement is unusable"),
            "max_gap_s": Int(10, 3600, 3600, doc="a step longer than this (or negative) is a discontinuity"),
            "max_w": Float(1, 10000, 2000.0, doc="a power reading above this is a meter error"),
        },
        doc="energy metering and counter persistence",
    )


SCHEMA = Lazy(_schema)


def _snapshot():
    return Dict(
        {
            "v": Int(1, _SNAPSHOT_VERSION),
            "wh": Int(0, _BIG),
            "nwh": Int(0, _NWH_PER_WH - 1),
            "est_wh": Int(0, _BIG, 0),
            "est_nwh": Int(0, _NWH_PER_WH - 1, 0),
            "burn_s": Int(0, _BIG),
            "switch_ons": Int(0, _BIG),
            "supply_losses": Int(0, _BIG),
        }
    )


_SNAPSHOT = Lazy(_snapshot)


class Meter:
    """Integrates one lamp's power and counts its events.

    Power-up behaviour: the first update() after construction only establishes the reference (time, power, lamp
    state); it integrates nothing and counts no switch-on edge (the lamp state before boot is unknown — a restart
    is counted by note_supply_loss() instead). Counters restored from `saved` carry on from there.

    A dead or lying meter does not stop the energy count: an interval without a reading at both ends is counted at
    the power the lamp model expected over it (`expected_w`, given by the caller), and that part is also totalled
    on its own (`energy_estimated_wh`), so an energy report can say how much of a total was measured.
    `restore_error` is None, or the text of why `saved` was refused (counters then start from zero).
    """

    def __init__(self, cfg=None, saved=None):
        self.cfg = SCHEMA.check(cfg if cfg is not None else {}, "metering")
        self._energy = [0, 0]  # [whole Wh, nWh]: see _accumulate
        self._estimated = [0, 0]  # the part of _energy counted from the lamp model, kept the same way
        self._burn_s = 0
        self._switch_ons = 0
        self._supply_losses = 0
        self.errors = 0  # meter readings refused since boot (None or impossible values); not persisted
        self.restore_error = None
        if saved is not None:
            try:
                s = _SNAPSHOT.check(saved, "metering.saved")
            except Invalid as e:
                self.restore_error = str(e)
            else:
                self._energy = [s["wh"], s["nwh"]]
                self._estimated = [s["est_wh"], s["est_nwh"]]
                self._burn_s = s["burn_s"]
                self._switch_ons = s["switch_ons"]
                self._supply_losses = s["supply_losses"]
        self._t = None  # time of the previous update
        self._w = None  # power at the previous update, None when unknown (boot, error, discontinuity)
        self._expected_w = None  # the lamp model's power at the previous update, None when not given
        self._on = None  # lamp state at the previous update, None = unknown
        self._saved_at = None
        self._dirty = False

    def _valid_watts(self, reading):
        # Returns watts, or None when the reading is missing or physically impossible.
        if reading is None:
            return None
        try:
            w = reading[2]
        except (TypeError, IndexError):
            return None
        if not isinstance(w, (int, float)) or isinstance(w, bool):
            return None
        # No float(w): ints are fine, and a test's float32-emulating float subclass must flow through unchanged.
        if not is_finite(w) or w > self.cfg["max_w"] or w < -1.0:
            return None
        # A metering chip reads a few tenths of a watt either side of zero with the lamp off: never subtract.
        return w if w > 0.0 else 0.0

    def update(self, now, reading, lamp_on, expected_w=None):
        """One control step. now: t2k seconds; reading: (V, A, W, PF) or None; lamp_on: relay/lamp commanded on;
        expected_w: what the lamp should draw from now until the next step, used where the meter cannot say."""
        on = bool(lamp_on)
        t0 = self._t
        self._t = now
        dt = None if t0 is None else now - t0
        if dt is not None and (dt < 0 or dt > self.cfg["max_gap_s"]):
            dt = None  # discontinuity (clock set, long stall): integrate nothing across it
        if dt and self._on:
            # The lamp state decided at the previous step held over the whole interval.
            self._burn_s += dt
            self._dirty = True
        if on and self._on is False:
            self._switch_ons += 1
            self._dirty = True
        self._on = on
        w = self._valid_watts(reading)
        if w is None:
            self.errors += 1
        if dt:
            self._integrate(w, dt)
        self._w = w
        self._expected_w = expected_w

    # A separate method, like the small ones in photocell.py: MicroPython puts the frame of a function with many
    # locals on the heap, and update() runs on every control step.
    def _integrate(self, w, dt):
        """Energy over the dt seconds since the previous step, whose power and expectation are still in self."""
        if w is not None and self._w is not None:
            # Trapezoid between the two samples: exact for ramps, half a step of error at a step change.
            _accumulate(self._energy, (self._w + w) * dt / 7200.0)
        elif self._expected_w is not None:
            # The lamp state decided at the previous step held over the interval, like the burn time above.
            e = self._expected_w * dt / 3600.0
            _accumulate(self._energy, e)
            _accumulate(self._estimated, e)
        else:
            return
        self._dirty = True

    def note_supply_loss(self):
        """Called once at boot by the node when the reset cause was power-on or brown-out."""
        self._supply_losses += 1
        self._dirty = True

    def energy_wh(self):
        return _wh(self._energy)

    def counters(self):
        return {
            "energy_wh": round(self.energy_wh(), 1),
            "energy_estimated_wh": round(_wh(self._estimated), 1),
            "burn_h": round(self._burn_s / 3600.0, 2),
            "switch_ons": self._switch_ons,
            "supply_losses": self._supply_losses,
        }

    def snapshot(self):
        """JSON-able state for flash; the constructor takes it back as `saved`."""
        return {
            "v": _SNAPSHOT_VERSION,
            "wh": self._energy[0],
            "nwh": self._energy[1],
            "est_wh": self._estimated[0],
            "est_nwh": self._estimated[1],
            "burn_s": self._burn_s,
            "switch_ons": self._switch_ons,
            "supply_losses": self._supply_losses,
        }

    def due_save(self, now):
        """True when counters changed and save_interval_s has passed since the last saved() (or since the first
        due_save() after boot: a boot loop must not write flash on every boot)."""
        if self._saved_at is None or now < self._saved_at:
            self._saved_at = now  # first call, or the clock was set back: restart the interval
            return False
        return self._dirty and now - self._saved_at >= self.cfg["save_interval_s"]

    def saved(self, now):
        """The node wrote snapshot() to flash at `now`."""
        self._saved_at = now
        self._dirty = False
