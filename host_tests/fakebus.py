"""Fake I2C bus and ADC for driver tests: chips modelled from their datasheets (byte order, derived registers).

Runs on CPython and the MicroPython unix port. Noise comes from our own LCG so both runtimes see the same numbers.
"""

import math

ENODEV = 19
EIO = 5


class FakeI2C:
    """The machine.I2C methods the drivers use. Devices are objects with read_reg/write_reg (register chips) or
    read_raw/write_raw (command chips). `fail` = number of next transfers that raise OSError(EIO)."""

    def __init__(self):
        self.devices = {}
        self.fail = 0
        self.transfers = 0

    def add(self, addr, dev):
        self.devices[addr] = dev
        return dev

    def scan(self):
        return sorted(self.devices)

    def _dev(self, addr):
        self.transfers += 1
        if self.fail > 0:
            self.fail -= 1
            raise OSError(EIO)
        d = self.devices.get(addr)
        if d is None:
            raise OSError(ENODEV)  # what machine.I2C raises when no device ACKs the address
        return d

    def readfrom_mem(self, addr, reg, n, addrsize=8):
        return bytes(self._dev(addr).read_reg(reg, n))

    def readfrom_mem_into(self, addr, reg, buf, addrsize=8):
        data = self._dev(addr).read_reg(reg, len(buf))
        for i in range(len(buf)):
            buf[i] = data[i]

    def writeto_mem(self, addr, reg, buf, addrsize=8):
        self._dev(addr).write_reg(reg, bytes(buf))

    def readfrom(self, addr, n, stop=True):
        return bytes(self._dev(addr).read_raw(n))

    def readfrom_into(self, addr, buf, stop=True):
        data = self._dev(addr).read_raw(len(buf))
        for i in range(len(buf)):
            buf[i] = data[i]

    def writeto(self, addr, buf, stop=True):
        self._dev(addr).write_raw(bytes(buf))
        return len(buf)


class Reg16:
    """A chip of 16-bit registers. `big` selects byte order on the wire. `writes` logs (reg, value)."""

    def __init__(self, regs, big=True):
        self.regs = dict(regs)
        self.big = big
        self.writes = []

    def value(self, reg):
        if reg not in self.regs:
            raise OSError(EIO)  # a real chip NAKs or returns junk for a register it does not have
        return self.regs[reg] & 0xFFFF

    def read_reg(self, reg, n):
        v = self.value(reg)
        hi, lo = v >> 8, v & 0xFF
        return bytes([hi, lo] if self.big else [lo, hi])[:n]

    def write_reg(self, reg, data):
        if len(data) != 2:
            raise OSError(EIO)
        v = data[0] << 8 | data[1] if self.big else data[1] << 8 | data[0]
        self.writes.append((reg, v))
        self.on_write(reg, v)

    def on_write(self, reg, v):
        self.regs[reg] = v


def _u16(v):
    return v & 0xFFFF


def _clip(v, lo, hi):
    return lo if v < lo else hi if v > hi else v


def _trunc_div(a, b):
    # The chips divide signed products truncating toward zero.
    q = abs(a) // b
    return -q if a < 0 else q


class INA219Model(Reg16):
    """INA219: shunt 10 uV/LSB (clipped by PGA), bus 4 mV/LSB in bits 15..3, current = shunt x cal / 4096,
    power = current x bus / 5000. A write of config bit 15 resets every register."""

    DEFAULTS = {0: 0x399F, 1: 0, 2: 0, 3: 0, 4: 0, 5: 0}

    def __init__(self):
        Reg16.__init__(self, self.DEFAULTS, big=True)
        self.bus_v = 0.0
        self.shunt_v = 0.0

    def set(self, bus_v, shunt_v):
        self.bus_v = bus_v
        self.shunt_v = shunt_v

    def on_write(self, reg, v):
        if reg == 0 and v & 0x8000:
            self.regs = dict(self.DEFAULTS)
            return
        if reg == 5:
            v &= 0xFFFE  # bit 0 not implemented
        self.regs[reg] = v

    def _shunt_counts(self):
        pg = (self.regs[0] >> 11) & 3
        full = 4000 << pg  # 40 mV .. 320 mV in 10 uV counts
        return _clip(int(round(self.shunt_v / 10e-6)), -full, full)

    def value(self, reg):
        shunt = self._shunt_counts()
        bus = _clip(int(round(self.bus_v / 0.004)), 0, 8191)
        cur = _trunc_div(shunt * self.regs[5], 4096)
        ovf = cur > 32767 or cur < -32768
        if reg == 1:
            return _u16(shunt)
        if reg == 2:
            return bus << 3 | 2 | (1 if ovf else 0)  # CNVR set, OVF when the current math overflows
        if reg == 4:
            return _u16(_clip(cur, -32768, 32767))
        if reg == 3:
            return _clip(abs(cur) * bus // 5000, 0, 0xFFFF)
        return Reg16.value(self, reg)


class INA226Model(Reg16):
    """INA226: shunt 2.5 uV/LSB, bus 1.25 mV/LSB, current = shunt x cal / 2048, power = current x bus / 20000,
    manufacturer id 0x5449 at 0xFE, die id 0x2260 at 0xFF, OVF in mask/enable bit 2."""

    DEFAULTS = {0: 0x4127, 1: 0, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 7: 0, 0xFE: 0x5449, 0xFF: 0x2260}

    def __init__(self):
        Reg16.__init__(self, self.DEFAULTS, big=True)
        self.bus_v = 0.0
        self.shunt_v = 0.0

    def set(self, bus_v, shunt_v):
        self.bus_v = bus_v
        self.shunt_v = shunt_v

    def on_write(self, reg, v):
        if reg == 0 and v & 0x8000:
            self.regs = dict(self.DEFAULTS)
            return
        if reg == 0:
            v |= 0x4000  # bit 14 reads back as 1
        if reg == 5:
            v &= 0x7FFF
        self.regs[reg] = v

    def value(self, reg):
        shunt = _clip(int(round(self.shunt_v / 2.5e-6)), -32768, 32767)
        bus = _clip(int(round(self.bus_v / 0.00125)), 0, 0x7FFF)
        cur = _trunc_div(shunt * self.regs[5], 2048)
        ovf = cur > 32767 or cur < -32768
        if reg == 1:
            return _u16(shunt)
        if reg == 2:
            return bus
        if reg == 4:
            return _u16(_clip(cur, -32768, 32767))
        if reg == 3:
            return _clip(abs(cur) * bus // 20000, 0, 0xFFFF)
        if reg == 6:
            return self.regs[6] | 0x0008 | (0x0004 if ovf else 0)  # CVRF set, OVF on overflow
        return Reg16.value(self, reg)


class VEML7700Model(Reg16):
    """VEML7700: little-endian registers; the test sets `als` (raw counts) directly. Power-on default shuts down."""

    def __init__(self):
        Reg16.__init__(self, {0: 0x0001, 1: 0, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0}, big=False)
        self.als = 0

    def value(self, reg):
        if reg == 4:
            return 0 if self.regs[0] & 1 else self.als  # shut down: no new results
        return Reg16.value(self, reg)

    def reset(self):
        self.regs[0] = 0x0001


class BH1750Model:
    """BH1750: opcode writes, 2-byte big-endian result = lux x 1.2 x MTreg / 69 (x2 in H-res mode 2)."""

    def __init__(self):
        self.lux = 0.0
        self.powered = False
        self.mtreg = 69
        self._mt_hi = 69 >> 5
        self.mode = None
        self.result = 0
        self.ops = []

    def _measure(self):
        k = 2.4 if self.mode in (0x11, 0x21) else 1.2
        self.result = _clip(int(self.lux * k * self.mtreg / 69), 0, 0xFFFF)

    def write_raw(self, data):
        for op in data:
            self.ops.append(op)
            if op == 0x00:
                self.powered = False
            elif op == 0x01:
                self.powered = True
            elif op == 0x07:
                self.result = 0
            elif op & 0xF8 == 0x40:
                self._mt_hi = op & 0x07
            elif op & 0xE0 == 0x60:
                self.mtreg = self._mt_hi << 5 | op & 0x1F
            elif op in (0x10, 0x11, 0x13, 0x20, 0x21, 0x23):
                if not self.powered:
                    raise OSError(EIO)
                self.mode = op
                self._measure()
                if op & 0x20:
                    self.powered = False  # one-shot: the chip powers down after the result

    def read_raw(self, n):
        if self.mode is not None and self.mode & 0x10 and self.powered:
            self._measure()  # continuous mode: always the latest
        return bytes([self.result >> 8, self.result & 0xFF])[:n]


class LCG:
    """Tiny deterministic generator (same numbers on every runtime): uniform in [0, 1)."""

    def __init__(self, seed):
        self.x = seed & 0x7FFFFFFF

    def uniform(self):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return self.x / 2147483648.0

    def gauss(self):
        # Sum of 12 uniforms - 6: mean 0, standard deviation 1, good enough for ADC noise.
        s = 0.0
        for _ in range(12):
            s += self.uniform()
        return s - 6.0


class FakeTime:
    """Microsecond clock advanced only by sleeps (and by the ADC's own conversion time)."""

    def __init__(self, start_us=0):
        self.t_us = start_us
        self.slept_us = 0
        self.sleeps = 0

    def ticks_us(self):
        return self.t_us & 0x3FFFFFFF

    def ticks_add(self, t, d):
        return (t + d) & 0x3FFFFFFF

    def ticks_diff(self, a, b):
        return ((a - b + 0x20000000) & 0x3FFFFFFF) - 0x20000000

    def sleep_us(self, d):
        self.t_us += d
        self.slept_us += d
        self.sleeps += 1

    def sleep_ms(self, d):
        self.sleep_us(d * 1000)


class FakeADC:
    """read_uv() = waveform(t_seconds) + gaussian noise, as an int in uV. Each read costs `conv_us` of fake time."""

    def __init__(self, waveform, clock, noise_uv=0.0, seed=1, conv_us=0):
        self.waveform = waveform
        self.clock = clock
        self.noise_uv = noise_uv
        self.rng = LCG(seed)
        self.conv_us = conv_us
        self.reads = 0

    def read_uv(self):
        self.reads += 1
        v = self.waveform(self.clock.t_us * 1e-6)
        if self.noise_uv:
            v += self.noise_uv * self.rng.gauss()
        self.clock.t_us += self.conv_us
        return int(v)


def sine(offset_uv, rms_uv, hz=50, phase=0.0):
    """A mains-like sine of the given RMS on top of a DC offset."""
    peak = rms_uv * math.sqrt(2)
    w = 2 * math.pi * hz

    def f(t):
        return offset_uv + peak * math.sin(w * t + phase)

    return f


def const_uv(uv):
    def f(t):
        return uv

    return f
