"""LDR (or photodiode) voltage divider on an ADC: volts -> resistance -> lux by a power law; None on sensor fault.

Divider: Vcc - R_fixed - (ADC) - LDR - GND by default (`ldr_on_top=False`), so the node voltage rises with darkness.
Curve: lux = A x R^-gamma. A typical GL5528 (R = 8-20 kOhm at 10 lux, datasheet gamma 0.7 between 10 and 100 lux)
with R10 = 15 kOhm gives gamma = 1/0.7 = 1.4286 and A = 10 x 15000^1.4286 = 9.244e6 (15 kOhm -> 10 lux,
3 kOhm -> 100 lux, 75 kOhm -> 1 lux). Calibrate A per batch against a lux meter at dusk: CdS parts vary +-40 %.

Fault detection is by range only: a voltage at a rail or a resistance outside [r_min_ohm, r_max_ohm] is an open or
short LDR and reads None. A divider cannot tell an open LDR from deep darkness when the ADC clips first (the ESP32
reads at most ~3.1 V): with the default wiring that fails to "dark", i.e. lamp on, the safe side for a streetlight.
"""

import math


class LDR:
    """`read_lux()` -> float in 0..max_lux, or None when the reading is out of range (sensor fault)."""

    def __init__(self, adc, lux_a=9.244e6, lux_gamma=1.4286, r_fixed_ohm=10000, vcc_uv=3300000, ldr_on_top=False,
                 r_min_ohm=20, r_max_ohm=2000000, v_min_uv=20000, v_max_uv=3250000, max_lux=100000.0, samples=8):
        if not lux_a > 0 or not 0.2 <= lux_gamma <= 5:
            raise ValueError("ldr: need lux_a > 0 and lux_gamma in 0.2..5")
        if not 100 <= r_fixed_ohm <= 10000000:
            raise ValueError("ldr: r_fixed_ohm %r out of 100..10M" % r_fixed_ohm)
        if not 1000000 <= vcc_uv <= 5500000:
            raise ValueError("ldr: vcc_uv %r out of 1..5.5 V" % vcc_uv)
        if not 0 < r_min_ohm < r_max_ohm:
            raise ValueError("ldr: need 0 < r_min_ohm < r_max_ohm")
        if not 0 <= v_min_uv < v_max_uv <= vcc_uv:
            raise ValueError("ldr: need 0 <= v_min_uv < v_max_uv <= vcc_uv")
        if not 1 <= samples <= 64:
            raise ValueError("ldr: samples %r out of 1..64" % samples)
        self.adc = adc
        self.log_a = math.log(lux_a)  # in logs, no intermediate (A ~ 1e7, R^-gamma ~ 1e-9) strains a 32-bit float
        self.gamma = lux_gamma
        self.r_fixed = r_fixed_ohm
        self.vcc_uv = vcc_uv
        self.on_top = ldr_on_top
        self.r_min = r_min_ohm
        self.r_max = r_max_ohm
        self.v_min = v_min_uv
        self.v_max = v_max_uv
        self.max_lux = max_lux
        self.samples = samples
        self.last_uv = None
        self.last_ohm = None

    def resistance(self, uv):
        """LDR ohms for a node voltage, or None when the voltage or the resistance is out of range."""
        if uv <= self.v_min or uv >= self.v_max:
            return None
        if self.on_top:
            r = self.r_fixed * (self.vcc_uv - uv) / uv
        else:
            r = self.r_fixed * uv / (self.vcc_uv - uv)
        if r < self.r_min or r > self.r_max:
            return None
        return r

    def lux_of(self, ohm):
        lux = math.exp(self.log_a - self.gamma * math.log(ohm))
        return lux if lux < self.max_lux else self.max_lux

    def read_lux(self):
        # Average a few samples: the ESP32 ADC has tens of mV of noise. Sum of <= 64 x 5.5e6 stays a small int.
        s = 0
        for _ in range(self.samples):
            s += self.adc.read_uv()
        uv = s // self.samples
        self.last_uv = uv
        r = self.resistance(uv)
        self.last_ohm = r
        return None if r is None else self.lux_of(r)
