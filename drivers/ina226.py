"""TI INA226 I2C power monitor (DC, up to 36 V bus): averaging, 1.25 mV bus LSB, 2.5 uV shunt LSB, calibration.

Registers are 16-bit big-endian (datasheet SBOS547). The manufacturer id register (0xFE = "TI") is checked at start
so an INA219 or another chip at the same address is refused instead of misread.
"""

from drivers.ina_base import InaBase
from drivers.ina_base import s16 as _s16
from firmware.compat import const

_REG_SHUNT = const(0x01)
_REG_BUS = const(0x02)
_REG_POWER = const(0x03)
_REG_CURRENT = const(0x04)
_REG_CAL = const(0x05)
_REG_MASK = const(0x06)
_REG_MFR_ID = const(0xFE)

MFR_ID_TI = const(0x5449)
_CONFIG_BASE = const(0x4000)  # bit 14 is fixed at 1 in the register
_MODE_SHUNT_BUS_CONT = const(0x7)
_MASK_OVF = const(0x0004)

# Averages -> AVG code (bits 11..9); conversion time in us -> VBUSCT/VSHCT code.
_AVG = {1: 0, 4: 1, 16: 2, 64: 3, 128: 4, 256: 5, 512: 6, 1024: 7}
_CT = {140: 0, 204: 1, 332: 2, 588: 3, 1100: 4, 2116: 5, 4156: 6, 8244: 7}

DEFAULT_ADDR = const(0x40)
SHUNT_FULL_SCALE_V = 0.08192


class INA226(InaBase):
    """`read()` -> (volts, amps, watts). amps is signed (negative: shunt wired the other way round)."""

    def __init__(self, i2c, addr=DEFAULT_ADDR, shunt_ohms=0.1, max_current_a=0.8, current_lsb=None, avg=16,
                 conv_us=1100):
        InaBase.__init__(self, "ina226", i2c, addr, shunt_ohms, max_current_a)
        if max_current_a * shunt_ohms > SHUNT_FULL_SCALE_V:
            raise ValueError("ina226: %.3g A x %.3g ohm exceeds the 81.92 mV shunt range" % (max_current_a, shunt_ohms))
        if avg not in _AVG:
            raise ValueError("ina226: avg must be one of 1, 4, 16, 64, 128, 256, 512, 1024")
        if conv_us not in _CT:
            raise ValueError("ina226: conv_us must be one of 140, 204, 332, 588, 1100, 2116, 4156, 8244")
        min_lsb = max_current_a / 32768  # the signed current register must hold max_current_a
        if current_lsb is None:
            current_lsb = min_lsb
        elif current_lsb < min_lsb * 0.999:
            raise ValueError("ina226: current_lsb %.3g A below max_current_a / 32768" % current_lsb)
        # CAL = 0.00512 / (Current_LSB x Rshunt), 15 bits; +0.001 guards an on-paper integer against float rounding.
        cal = int(0.00512 / (current_lsb * shunt_ohms) + 0.001)
        if not 1 <= cal <= 0x7FFF:
            raise ValueError("ina226: calibration %d out of range; adjust shunt_ohms/max_current_a" % cal)
        self.cal = cal
        self.current_lsb = 0.00512 / (cal * shunt_ohms)
        self.power_lsb = 25 * self.current_lsb
        # Default 16 x 1.1 ms x 2 channels = 35 ms per result: averages a 1 kHz PWM-dimmed LED current.
        self.config = _CONFIG_BASE | _AVG[avg] << 9 | _CT[conv_us] << 6 | _CT[conv_us] << 3 | _MODE_SHUNT_BUS_CONT
        mfr = self._read(_REG_MFR_ID)
        if mfr != MFR_ID_TI:
            raise OSError("ina226 at 0x%02x: manufacturer id 0x%04x, expected 0x5449" % (addr, mfr))
        self.init()

    def shunt_volts(self):
        return _s16(self._read(_REG_SHUNT)) * 2.5e-6

    def read(self):
        if self._read(_REG_MASK) & _MASK_OVF:
            raise ValueError("ina226 at 0x%02x: math overflow, current beyond max_current_a" % self.addr)
        if self._read(_REG_CAL) != self.cal:
            self.init()  # a reset chip reads 0 A forever otherwise
            raise OSError("ina226 at 0x%02x: calibration lost (chip reset), rewritten" % self.addr)
        volts = (self._read(_REG_BUS) & 0x7FFF) * 0.00125
        amps = _s16(self._read(_REG_CURRENT)) * self.current_lsb
        watts = self._read(_REG_POWER) * self.power_lsb
        return (volts, amps, watts)
