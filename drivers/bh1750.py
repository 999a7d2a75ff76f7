"""ROHM BH1750FVI I2C ambient light meter: lux = counts / 1.2 x (69 / MTreg), halved in the H-resolution-2 modes.

The chip has no registers: each write is a one-byte opcode, each read returns the last result, big-endian.
"""

from firmware.compat import const

_POWER_DOWN = const(0x00)
_POWER_ON = const(0x01)
_MT_HIGH = const(0x40)  # 01000_MT[7:5]
_MT_LOW = const(0x60)  # 011_MT[4:0]
MT_DEFAULT = const(69)

# mode name -> (opcode, one-shot?, max measurement time in ms at MTreg 69, divide-by-2 for H-res mode 2)
MODES = {
    "continuous_high": (0x10, False, 180, False),
    "continuous_high2": (0x11, False, 180, True),
    "continuous_low": (0x13, False, 24, False),
    "one_high": (0x20, True, 180, False),
    "one_high2": (0x21, True, 180, True),
    "one_low": (0x23, True, 24, False),
}


class BH1750:
    """`read_lux()` -> float. One-shot modes block for the measurement time through the injected `sleep_ms`."""

    def __init__(self, i2c, addr=0x23, mode="continuous_high", mtreg=MT_DEFAULT, sleep_ms=None):
        if addr not in (0x23, 0x5C):
            raise ValueError("bh1750: address must be 0x23 (ADDR low) or 0x5c (ADDR high)")
        if mode not in MODES:
            raise ValueError("bh1750: mode must be one of " + ", ".join(sorted(MODES)))
        if not 31 <= mtreg <= 254:
            raise ValueError("bh1750: mtreg %d not in 31..254" % mtreg)
        self.opcode, self.one_shot, t_ms, half = MODES[mode]
        if self.one_shot and sleep_ms is None:
            raise ValueError("bh1750: one-shot mode needs a sleep_ms callable")
        self.i2c = i2c
        self.addr = addr
        self.mtreg = mtreg
        self.sleep_ms = sleep_ms
        # Measurement time scales with MTreg; use the datasheet maximum so a one-shot read never sees a stale value.
        self.meas_ms = (t_ms * mtreg + MT_DEFAULT - 1) // MT_DEFAULT
        self.scale = MT_DEFAULT / (1.2 * mtreg) / (2 if half else 1)
        self._cmd = bytearray(1)
        self._buf = bytearray(2)
        self.init()

    def _send(self, opcode):
        self._cmd[0] = opcode
        self.i2c.writeto(self.addr, self._cmd)

    def init(self):
        self._send(_POWER_ON)
        self._send(_MT_HIGH | self.mtreg >> 5)
        self._send(_MT_LOW | self.mtreg & 0x1F)
        if not self.one_shot:
            self._send(self.opcode)

    def power_down(self):
        self._send(_POWER_DOWN)

    def read_raw(self):
        if self.one_shot:
            # The chip powers itself down after a one-shot result and takes measurement commands only when on.
            self._send(_POWER_ON)
            self._send(self.opcode)
            self.sleep_ms(self.meas_ms)
        self.i2c.readfrom_into(self.addr, self._buf)
        return self._buf[0] << 8 | self._buf[1]

    def read_lux(self):
        return self.read_raw() * self.scale
