"""Allegro ACS712 Hall current sensor on an ADC: RMS mains current over whole cycles, with a learned zero offset.

The sensor only gives current. Power needs volts and power factor, which it cannot measure: the board multiplies
by a configured nominal mains voltage (220 V in Indonesia) and a configured PF (an LED driver's datasheet PF at
full load, typically 0.9-0.98), so watts are an estimate, good for lamp-failure and burn-hour logic, not billing.

Output is ratiometric: 0 A gives Vcc/2 (2.5 V at 5 V), sensitivity 185 mV/A (-05B), 100 mV/A (-20A), 66 mV/A (-30A).
The ESP32 ADC reads at most ~3.1 V, so the output normally goes through a divider: `divider` = ADC volts per sensor
volt (e.g. 10k/20k gives 2/3). A read takes `cycles` whole mains cycles of `samples_per_cycle` samples and blocks for
that long (5 cycles at 50 Hz = 100 ms).
"""

import math

SENSITIVITY_MV_PER_A = {"05B": 185.0, "20A": 100.0, "30A": 66.0}


class Pacer:
    """A `pace(period_us)` callable that keeps a steady sample cadence: it waits for a deadline that advances by
    exactly one period per call, so the time spent reading the ADC does not stretch the window (a plain
    sleep_us(period) would, and an RMS over 1.1 cycles is not the RMS of the wave)."""

    def __init__(self, ticks_us, ticks_add, ticks_diff, sleep_us):
        self.ticks_us = ticks_us
        self.ticks_add = ticks_add
        self.ticks_diff = ticks_diff
        self.sleep_us = sleep_us
        self._next = None

    def __call__(self, period_us):
        now = self.ticks_us()
        # First call of a burst, or we fell a whole period behind: restart the grid from now.
        if self._next is None or self.ticks_diff(now, self._next) > period_us:
            self._next = now
        self._next = self.ticks_add(self._next, period_us)
        wait = self.ticks_diff(self._next, now)
        if wait > 0:
            self.sleep_us(wait)


class ACS712:
    """`read()` -> amps RMS (>= 0). `zero()` learns the offset while the lamp is known to be off."""

    def __init__(self, sample, pace, mv_per_a=185.0, divider=1.0, offset_uv=None, mains_hz=50, cycles=5,
                 samples_per_cycle=40, adc_min_uv=50000, adc_max_uv=3200000, zero_max_a=0.15, noise_uv=0.0):
        if not 10.0 <= mv_per_a <= 1000.0:
            raise ValueError("acs712: mv_per_a %r out of 10..1000" % mv_per_a)
        if not 0.05 <= divider <= 1.0:
            raise ValueError("acs712: divider %r out of 0.05..1" % divider)
        if mains_hz not in (50, 60):
            raise ValueError("acs712: mains_hz must be 50 or 60")
        if not 1 <= cycles <= 50:
            raise ValueError("acs712: cycles %r out of 1..50" % cycles)
        if not 8 <= samples_per_cycle <= 200:
            raise ValueError("acs712: samples_per_cycle %r out of 8..200" % samples_per_cycle)
        if not 0 <= adc_min_uv < adc_max_uv:
            raise ValueError("acs712: need 0 <= adc_min_uv < adc_max_uv")
        if not noise_uv >= 0:
            raise ValueError("acs712: noise_uv must be >= 0")
        if offset_uv is None:
            offset_uv = int(2500000 * divider)  # nominal Vcc/2 at 5 V until zero() has learned the real one
        if not adc_min_uv < offset_uv < adc_max_uv:
            raise ValueError("acs712: offset_uv %d outside the ADC range" % offset_uv)
        self.sample = sample
        self.pace = pace
        self.mv_per_a_adc = mv_per_a * divider  # what the ADC sees per amp
        self.offset_uv = int(offset_uv)
        self.noise_uv = float(noise_uv)
        self.n = cycles * samples_per_cycle
        # Sample period in us as base + a Bresenham-style remainder (1e6 / (60 x 40) is not an integer): the window
        # then spans exactly `cycles` mains periods, and every quantity stays a small int.
        rate = mains_hz * samples_per_cycle
        self._base_us = 1000000 // rate
        self._rem = 1000000 % rate
        self._rate = rate
        self.adc_min_uv = adc_min_uv
        self.adc_max_uv = adc_max_uv
        self.zero_max_a = zero_max_a
        self.last_mean_uv = None  # mean of the last window: drift of the real offset shows up here

    def _window(self, ref):
        """Sample one window; return (mean of sample - ref in uV, mean square of it in mV^2)."""
        s = 0
        sq = 0.0
        acc = 0
        lo = self.adc_min_uv
        hi = self.adc_max_uv
        for _ in range(self.n):
            acc += self._rem
            if acc >= self._rate:
                acc -= self._rate
                self.pace(self._base_us + 1)
            else:
                self.pace(self._base_us)
            uv = self.sample()
            if uv < lo or uv > hi:
                raise ValueError("acs712: sample %d uV outside %d..%d uV: sensor unpowered, unwired or overloaded"
                                 % (uv, lo, hi))
            d = uv - ref
            s += d
            # Squares in float mV^2: an int uV^2 would be a heap-allocated big int on the ESP32. The sum runs over
            # at most 10 000 terms of the same magnitude, so float32 rounding stays below 0.1 %.
            f = d * 0.001
            sq += f * f
        return s / self.n, sq / self.n

    def read(self):
        mean_d, ms = self._window(self.offset_uv)
        self.last_mean_uv = self.offset_uv + mean_d
        # Noise adds in quadrature: subtract the noise power learned by zero() so a dark lamp reads ~0 A.
        nm = self.noise_uv * 0.001
        ms -= nm * nm
        return math.sqrt(ms) / self.mv_per_a_adc if ms > 0 else 0.0

    def zero(self):
        """Learn offset and noise from one window with no load current; return the offset in uV.

        Refuses (ValueError, old offset kept) when the window is not quiet: the lamp was not really off."""
        ref = self.sample()
        mean_d, ms = self._window(ref)
        var = ms - (mean_d * 0.001) ** 2
        noise_uv = math.sqrt(var) * 1000 if var > 0 else 0.0
        amps = noise_uv * 0.001 / self.mv_per_a_adc
        if amps > self.zero_max_a:
            raise ValueError("acs712.zero: %.3f A rms present, lamp not off?" % amps)
        self.offset_uv = ref + int(mean_d + (0.5 if mean_d >= 0 else -0.5))
        self.noise_uv = noise_uv
        return self.offset_uv
