"""What TI's INA219 and INA226 power monitors share: 16-bit big-endian registers, the same config (0x00) and
calibration (0x05) addresses, the 0x40..0x4F address range and the parameter checks. Each chip's module adds its
own scaling."""

from firmware.compat import const

_REG_CONFIG = const(0x00)
_REG_CAL = const(0x05)


def s16(v):
    return v - 0x10000 if v & 0x8000 else v


class InaBase:
    """Subclasses set `config` and `cal` before calling init()."""

    def __init__(self, name, i2c, addr, shunt_ohms, max_current_a):
        if not 0x40 <= addr <= 0x4F:
            raise ValueError("%s: address 0x%02x not in 0x40..0x4f" % (name, addr))
        if not 0.0001 <= shunt_ohms <= 100:
            raise ValueError("%s: shunt_ohms %r out of 0.0001..100" % (name, shunt_ohms))
        if not max_current_a > 0:
            raise ValueError("%s: max_current_a must be > 0" % name)
        self.i2c = i2c
        self.addr = addr
        self._buf = bytearray(2)  # one buffer for every register transfer: no allocation per reading

    def _read(self, reg):
        self.i2c.readfrom_mem_into(self.addr, reg, self._buf)
        return self._buf[0] << 8 | self._buf[1]

    def _write(self, reg, value):
        self._buf[0] = value >> 8
        self._buf[1] = value & 0xFF
        self.i2c.writeto_mem(self.addr, reg, self._buf)

    def init(self):
        """Write configuration and calibration (also used to recover after the chip lost power)."""
        self._write(_REG_CONFIG, self.config)
        self._write(_REG_CAL, self.cal)
