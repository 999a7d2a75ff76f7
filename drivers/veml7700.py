"""Vishay VEML7700 I2C ambient light sensor: gain and integration time, lux per count, high-lux linearity fix.

16-bit registers are little-endian (low byte first). Lux per count is 0.0036 at gain 2 and 800 ms and scales
inversely with gain and integration time (Vishay application note 84323, "Designing the VEML7700 into an
application"). Above 1000 lux the raw response is non-linear; the note's 4th-order polynomial corrects it.
"""

from firmware.compat import const

_REG_ALS_CONF = const(0x00)
_REG_PSM = const(0x03)
_REG_ALS = const(0x04)
_REG_WHITE = const(0x05)

ADDR = const(0x10)  # fixed: the chip has no address pin

# gain -> ALS_GAIN bits 12..11; integration time ms -> ALS_IT bits 9..6
GAINS = {2.0: 0b01, 1.0: 0b00, 0.25: 0b11, 0.125: 0b10}
ITS = {25: 0b1100, 50: 0b1000, 100: 0b0000, 200: 0b0001, 400: 0b0010, 800: 0b0011}

_RES_G2_800MS = 0.0036  # lux per count at gain 2, 800 ms
_CORRECT_ABOVE = 1000.0


def correct(lux):
    """Application-note correction of the non-linear response (applied above 1000 lux). Horner form keeps the
    intermediate values small for 32-bit floats."""
    return lux * (1.0023 + lux * (8.1488e-05 + lux * (-9.3924e-09 + lux * 6.0135e-13)))


class VEML7700:
    """`read_lux()` -> float. A saturated count (65535) is returned as the full-scale lux: "at least this bright"."""

    def __init__(self, i2c, addr=ADDR, gain=0.125, it_ms=100):
        if addr != ADDR:
            raise ValueError("veml7700: address is fixed at 0x10")
        if gain not in GAINS:
            raise ValueError("veml7700: gain must be one of 0.125, 0.25, 1, 2")
        if it_ms not in ITS:
            raise ValueError("veml7700: it_ms must be one of 25, 50, 100, 200, 400, 800")
        self.i2c = i2c
        self.addr = addr
        self.resolution = _RES_G2_800MS * (2.0 / gain) * (800.0 / it_ms)
        # Persistence 1, interrupt off, ALS_SD = 0 (powered on).
        self.conf = GAINS[gain] << 11 | ITS[it_ms] << 6
        self.it_ms = it_ms
        self._buf = bytearray(2)
        self.init()

    def _read(self, reg):
        self.i2c.readfrom_mem_into(self.addr, reg, self._buf)
        return self._buf[0] | self._buf[1] << 8

    def _write(self, reg, value):
        self._buf[0] = value & 0xFF
        self._buf[1] = value >> 8
        self.i2c.writeto_mem(self.addr, reg, self._buf)

    def init(self):
        """Power on with our gain/time; power saving off so a result is ready every integration time."""
        self._write(_REG_ALS_CONF, self.conf)
        self._write(_REG_PSM, 0)

    def read_raw(self):
        return self._read(_REG_ALS)

    def read_lux(self):
        if self._read(_REG_ALS_CONF) != self.conf:
            # A supply glitch resets the chip (shut down, other gain): rewrite, and report this sample as lost.
            self.init()
            raise OSError("veml7700: configuration lost (chip reset), rewritten")
        lux = self.read_raw() * self.resolution
        if lux > _CORRECT_ABOVE:
            lux = correct(lux)
        return lux
