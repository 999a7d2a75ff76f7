"""TI INA219 I2C power monitor (DC): bus volts, current and power through the chip's calibration register.

The INA219 measures DC up to 26 V on its bus pin: use it on 12/24 V (e.g. solar) lamps or on the low-voltage side of
an LED driver, never on mains. Registers are 16-bit big-endian (datasheet SBOS448).
"""

from drivers.ina_base import InaBase
from drivers.ina_base import s16 as _s16
from firmware.compat import const

_REG_SHUNT = const(0x01)
_REG_BUS = const(0x02)
_REG_POWER = const(0x03)
_REG_CURRENT = const(0x04)
_REG_CAL = const(0x05)

_CONFIG_RESET = const(0x8000)
_MODE_SHUNT_BUS_CONT = const(0x7)
_BUS_OVF = const(0x01)  # "math overflow": current or power beyond what the calibration can hold

# Shunt-voltage full scale of each PGA setting (mV) -> PG bits 12..11.
_PGA = ((40, 0), (80, 1), (160, 2), (320, 3))
# ADC averaging: samples -> BADC/SADC code (12-bit resolution always). Averaging 128 x 532 us = 68 ms spans many
# periods of a PWM-dimmed LED current, so the registers show the mean current, not a random point of the pulse.
_AVG = {1: 0x3, 2: 0x9, 4: 0xA, 8: 0xB, 16: 0xC, 32: 0xD, 64: 0xE, 128: 0xF}

DEFAULT_ADDR = const(0x40)


class INA219(InaBase):
    """`read()` -> (volts, amps, watts). amps is signed (negative: shunt wired the other way round)."""

    def __init__(self, i2c, addr=DEFAULT_ADDR, shunt_ohms=0.1, max_current_a=3.2, current_lsb=None, bus_range_v=32,
                 samples=128):
        InaBase.__init__(self, "ina219", i2c, addr, shunt_ohms, max_current_a)
        v_shunt_mv = max_current_a * shunt_ohms * 1000
        pg = None
        for full_mv, code in _PGA:
            if v_shunt_mv <= full_mv * 1.0001:  # 3.2 A x 0.1 ohm is 320.00000000000006 mV in floats
                pg = code
                break
        if pg is None:
            raise ValueError("ina219: %.3g A x %.3g ohm = %.0f mV exceeds the 320 mV shunt range"
                             % (max_current_a, shunt_ohms, v_shunt_mv))
        if bus_range_v not in (16, 32):
            raise ValueError("ina219: bus_range_v must be 16 or 32")
        if samples not in _AVG:
            raise ValueError("ina219: samples must be one of 1, 2, 4 .. 128")
        # Datasheet: Current_LSB >= max expected current / 2^15, so the signed current register cannot overflow.
        min_lsb = max_current_a / 32768
        if current_lsb is None:
            current_lsb = min_lsb
        elif current_lsb < min_lsb * 0.999:
            raise ValueError("ina219: current_lsb %.3g A below max_current_a / 32768" % current_lsb)
        # Cal = trunc(0.04096 / (Current_LSB x Rshunt)); bit 0 is not implemented. The +0.001 keeps a value that is
        # an integer on paper (e.g. 4096) from truncating to 4095 through float rounding.
        cal = int(0.04096 / (current_lsb * shunt_ohms) + 0.001) & 0xFFFE
        if not 2 <= cal <= 0xFFFE:
            raise ValueError("ina219: calibration %d out of range; adjust shunt_ohms/max_current_a" % cal)
        self.cal = cal
        # Recompute the LSB from the integer calibration actually written, so register -> amps stays exact.
        self.current_lsb = 0.04096 / (cal * shunt_ohms)
        self.power_lsb = 20 * self.current_lsb
        self.config = ((1 if bus_range_v == 32 else 0) << 13 | pg << 11 | _AVG[samples] << 7 | _AVG[samples] << 3
                       | _MODE_SHUNT_BUS_CONT)
        self.init()

    def shunt_volts(self):
        return _s16(self._read(_REG_SHUNT)) * 10e-6  # 10 uV per LSB in every PGA range

    def read(self):
        bus = self._read(_REG_BUS)
        if bus & _BUS_OVF:
            raise ValueError("ina219 at 0x%02x: math overflow, current beyond max_current_a" % self.addr)
        if self._read(_REG_CAL) != self.cal:
            # A supply glitch resets the chip to calibration 0, which reads as 0 A forever: rewrite, report once.
            self.init()
            raise OSError("ina219 at 0x%02x: calibration lost (chip reset), rewritten" % self.addr)
        volts = (bus >> 3) * 0.004
        amps = _s16(self._read(_REG_CURRENT)) * self.current_lsb
        watts = self._read(_REG_POWER) * self.power_lsb
        return (volts, amps, watts)
