# runtimes: cpython micropython
"""Sensor chip drivers against fake buses that answer like the datasheets (host_tests/fakebus.py)."""

from fakebus import (ENODEV, BH1750Model, FakeADC, FakeI2C, FakeTime, INA219Model, INA226Model, VEML7700Model,
                     const_uv, sine)
from mini import approx, raises

from drivers.acs712 import ACS712, Pacer
from drivers.bh1750 import BH1750
from drivers.ina219 import INA219
from drivers.ina226 import INA226
from drivers.ldr import LDR
from drivers.veml7700 import VEML7700, correct


# ---------------------------------------------------------------- INA219

def test_ina219_calibration_datasheet_style():
    # 0.1 ohm shunt, Current_LSB 100 uA: Cal = trunc(0.04096 / (0.0001 x 0.1)) = 4096, Power_LSB = 2 mW.
    bus = FakeI2C()
    chip = bus.add(0x40, INA219Model())
    ina = INA219(bus, shunt_ohms=0.1, max_current_a=2.0, current_lsb=0.0001)
    assert ina.cal == 4096
    assert chip.regs[5] == 4096
    assert approx(ina.power_lsb, 0.002, 1e-9)
    # 2 A x 0.1 ohm = 200 mV -> 320 mV PGA (PG = 11), 32 V range, 128-sample averaging, continuous.
    assert chip.regs[0] == (1 << 13 | 3 << 11 | 0xF << 7 | 0xF << 3 | 7)


def test_ina219_reads_volts_amps_watts():
    bus = FakeI2C()
    chip = bus.add(0x40, INA219Model())
    ina = INA219(bus, shunt_ohms=0.1, max_current_a=2.0, current_lsb=0.0001)
    chip.set(12.0, 0.1)  # 12 V bus, 100 mV across 0.1 ohm = 1 A
    # Registers: shunt 10000, bus 3000 << 3, current 10000 x 4096 / 4096 = 10000, power 10000 x 3000 / 5000 = 6000.
    assert chip.value(4) == 10000 and chip.value(3) == 6000
    v, a, w = ina.read()
    assert approx(v, 12.0, 1e-9)
    assert approx(a, 1.0, 1e-9)
    assert approx(w, 12.0, 1e-9)
    assert approx(ina.shunt_volts(), 0.1, 1e-9)


def test_ina219_default_lsb_and_negative_current():
    bus = FakeI2C()
    chip = bus.add(0x41, INA219Model())
    ina = INA219(bus, addr=0x41, shunt_ohms=0.1, max_current_a=3.2)
    # LSB = 3.2 / 32768 = 97.66 uA -> Cal = trunc(4194.3) = 4194; the driver uses the LSB of the written Cal.
    assert ina.cal == 4194
    assert approx(ina.current_lsb, 0.04096 / 419.4, 1e-12)
    chip.set(24.0, -0.05)  # shunt reversed, 0.5 A
    v, a, w = ina.read()
    assert approx(a, -0.5, 0.0002)
    assert approx(w, 12.0, 0.01)
    # the PGA picked is the smallest that holds 3.2 A x 0.1 ohm = 320 mV: PG = 3
    assert (chip.regs[0] >> 11) & 3 == 3


def test_ina219_small_range_picks_small_pga():
    bus = FakeI2C()
    chip = bus.add(0x40, INA219Model())
    INA219(bus, shunt_ohms=0.01, max_current_a=3.0, bus_range_v=16)  # 30 mV -> 40 mV range
    assert (chip.regs[0] >> 11) & 3 == 0
    assert not chip.regs[0] & (1 << 13)


def test_ina219_rejects_bad_config():
    bus = FakeI2C()
    bus.add(0x40, INA219Model())
    assert "320 mV" in str(raises(ValueError, INA219, bus, shunt_ohms=0.1, max_current_a=5.0))
    raises(ValueError, INA219, bus, addr=0x30)
    raises(ValueError, INA219, bus, bus_range_v=24)
    raises(ValueError, INA219, bus, samples=3)
    raises(ValueError, INA219, bus, max_current_a=2.0, current_lsb=0.00001)


def test_ina219_absent_and_reset_chip():
    bus = FakeI2C()
    e = raises(OSError, INA219, bus)
    assert e.args[0] == ENODEV
    chip = bus.add(0x40, INA219Model())
    ina = INA219(bus, shunt_ohms=0.1, max_current_a=2.0, current_lsb=0.0001)
    chip.set(12.0, 0.1)
    chip.regs = dict(INA219Model.DEFAULTS)  # brown-out: calibration back to 0
    e = raises(OSError, ina.read)
    assert "calibration lost" in str(e)
    assert chip.regs[5] == 4096  # rewritten
    assert approx(ina.read()[1], 1.0, 1e-9)


def test_ina219_overflow_is_an_error():
    bus = FakeI2C()
    chip = bus.add(0x40, INA219Model())
    ina = INA219(bus, shunt_ohms=0.1, max_current_a=1.0)
    chip.set(12.0, 0.3)  # 3 A through a calibration made for 1 A
    assert "overflow" in str(raises(ValueError, ina.read))


def test_ina219_bus_error_propagates():
    bus = FakeI2C()
    bus.add(0x40, INA219Model())
    ina = INA219(bus)
    bus.fail = 1
    raises(OSError, ina.read)


# ---------------------------------------------------------------- INA226

def test_ina226_calibration_formula():
    bus = FakeI2C()
    bus.add(0x40, INA226Model())
    # CAL = 0.00512 / (Current_LSB x R): 1 mA and 2 mOhm -> 2560 (max 32 A > 40.96 mV/2 mOhm? no: 20.48 A ok)
    ina = INA226(bus, shunt_ohms=0.002, max_current_a=20.0, current_lsb=0.001)
    assert ina.cal == 2560
    assert approx(ina.power_lsb, 0.025, 1e-12)


def test_ina226_reads_volts_amps_watts():
    bus = FakeI2C()
    chip = bus.add(0x44, INA226Model())
    # 10 mOhm, 0.25 mA LSB -> CAL = 0.00512 / (0.00025 x 0.01) = 2048, so current register = shunt counts.
    ina = INA226(bus, addr=0x44, shunt_ohms=0.01, max_current_a=8.0, current_lsb=0.00025, avg=64, conv_us=588)
    assert chip.regs[5] == 2048
    assert chip.regs[0] == 0x4000 | 3 << 9 | 3 << 6 | 3 << 3 | 7
    chip.set(24.0, 0.05)  # 50 mV -> 20000 counts of 2.5 uV = 5 A; bus 19200 counts of 1.25 mV
    assert chip.value(1) == 20000 and chip.value(2) == 19200
    assert chip.value(3) == 19200  # 20000 x 19200 / 20000
    v, a, w = ina.read()
    assert approx(v, 24.0, 1e-9)
    assert approx(a, 5.0, 1e-9)
    assert approx(w, 120.0, 1e-6)  # 19200 x 25 x 0.25 mA
    assert approx(ina.shunt_volts(), 0.05, 1e-9)


def test_ina226_checks_identity_and_config():
    bus = FakeI2C()
    chip = bus.add(0x40, INA226Model())
    chip.regs[0xFE] = 0x1234
    assert "manufacturer" in str(raises(OSError, INA226, bus))
    chip.regs[0xFE] = 0x5449
    raises(ValueError, INA226, bus, shunt_ohms=0.1, max_current_a=1.0)  # 100 mV > 81.92 mV
    raises(ValueError, INA226, bus, avg=10)
    raises(ValueError, INA226, bus, conv_us=1000)
    e = raises(OSError, INA226, FakeI2C())
    assert e.args[0] == ENODEV


def test_ina226_overflow_and_reset():
    bus = FakeI2C()
    chip = bus.add(0x40, INA226Model())
    ina = INA226(bus, shunt_ohms=0.01, max_current_a=2.0)
    chip.set(12.0, 0.05)  # 5 A into a 2 A calibration
    raises(ValueError, ina.read)
    chip.set(12.0, 0.01)  # 1 A
    chip.regs = dict(INA226Model.DEFAULTS)
    raises(OSError, ina.read)
    v, a, w = ina.read()
    assert approx(a, 1.0, 0.001) and approx(v, 12.0, 0.002)


# ---------------------------------------------------------------- BH1750

def test_bh1750_datasheet_example():
    # Datasheet: result 0x8390 = 33680 counts in H-resolution mode -> 33680 / 1.2 = 28067 lux.
    bus = FakeI2C()
    chip = bus.add(0x23, BH1750Model())
    bh = BH1750(bus)
    assert chip.ops[:4] == [0x01, 0x40 | 69 >> 5, 0x60 | 69 & 0x1F, 0x10]
    chip.lux = 28066.7
    assert bh.read_raw() == 0x8390
    assert approx(bh.read_lux(), 28066.7, 0.5)


def test_bh1750_mtreg_and_mode2():
    bus = FakeI2C()
    chip = bus.add(0x5C, BH1750Model())
    bh = BH1750(bus, addr=0x5C, mode="continuous_high2", mtreg=138)
    assert chip.mtreg == 138
    chip.lux = 10.0
    # counts = 10 x 1.2 x 2 (mode 2) x 138/69 = 48 -> lux = 48 / 1.2 x 69/138 / 2 = 10
    assert bh.read_raw() == 48
    assert approx(bh.read_lux(), 10.0, 1e-9)


def test_bh1750_one_shot_waits_and_rearms():
    bus = FakeI2C()
    chip = bus.add(0x23, BH1750Model())
    clock = FakeTime()
    bh = BH1750(bus, mode="one_high", mtreg=100, sleep_ms=clock.sleep_ms)
    assert bh.meas_ms == 261  # ceil(180 x 100 / 69): datasheet max time scaled by MTreg
    count = 69 / (1.2 * 100)  # lux per count at MTreg 100: 0.575
    chip.lux = 50.0
    assert approx(bh.read_lux(), 50.0, count)
    assert clock.slept_us == 261000
    chip.lux = 80.0
    assert approx(bh.read_lux(), 80.0, count)  # each read issues a new one-shot command
    assert chip.ops.count(0x20) == 2


def test_bh1750_validation_and_absent():
    bus = FakeI2C()
    raises(ValueError, BH1750, bus, addr=0x40)
    raises(ValueError, BH1750, bus, mtreg=300)
    raises(ValueError, BH1750, bus, mode="fast")
    raises(ValueError, BH1750, bus, mode="one_low")  # no sleep_ms given
    assert raises(OSError, BH1750, bus).args[0] == ENODEV


# ---------------------------------------------------------------- VEML7700

def test_veml7700_config_little_endian():
    bus = FakeI2C()
    chip = bus.add(0x10, VEML7700Model())
    VEML7700(bus, gain=0.125, it_ms=100)
    # gain 1/8 = 0b10 in bits 12:11, 100 ms = 0b0000: 0x1000, sent low byte first.
    assert chip.writes[0] == (0, 0x1000)
    assert bus.readfrom_mem(0x10, 0, 2) == bytes([0x00, 0x10])
    assert chip.regs[3] == 0  # power saving off


def test_veml7700_resolution_table():
    bus = FakeI2C()
    bus.add(0x10, VEML7700Model())
    # Application-note table values.
    for gain, it, res in ((2.0, 800, 0.0036), (1.0, 800, 0.0072), (0.25, 800, 0.0288), (0.125, 800, 0.0576),
                          (2.0, 100, 0.0288), (0.125, 100, 0.4608), (0.125, 25, 1.8432), (2.0, 25, 0.1152)):
        v = VEML7700(bus, gain=gain, it_ms=it)
        assert approx(v.resolution, res, res * 1e-6), (gain, it)


def test_veml7700_lux_and_correction():
    bus = FakeI2C()
    chip = bus.add(0x10, VEML7700Model())
    v = VEML7700(bus, gain=0.125, it_ms=100)
    chip.als = 1000
    assert approx(v.read_lux(), 460.8, 1e-6)  # below 1000 lux: linear
    chip.als = 5000  # 2304 lux raw -> polynomial, hand-computed 2643.94
    assert approx(v.read_lux(), 2643.94, 0.05)
    assert approx(correct(2304.0), 2643.94, 0.05)
    # correction grows with lux and is close to identity at 1000
    assert approx(correct(1000.0), 1000.0 * 1.07, 15)


def test_veml7700_reset_detected_and_validation():
    bus = FakeI2C()
    chip = bus.add(0x10, VEML7700Model())
    v = VEML7700(bus, gain=1.0, it_ms=200)
    chip.als = 100
    assert approx(v.read_lux(), 100 * 0.0036 * 2 * 4, 1e-9)
    chip.reset()
    assert "configuration lost" in str(raises(OSError, v.read_lux))
    assert approx(v.read_lux(), 2.88, 1e-9)
    raises(ValueError, VEML7700, bus, gain=0.5)
    raises(ValueError, VEML7700, bus, it_ms=150)
    raises(ValueError, VEML7700, bus, addr=0x11)
    assert raises(OSError, VEML7700, FakeI2C()).args[0] == ENODEV


# ---------------------------------------------------------------- ACS712

def _acs(rms_a, mv_per_a=185.0, divider=1.0, offset=2500000, noise=0.0, hz=50, phase=0.3, conv_us=0, **kw):
    clock = FakeTime()
    adc = FakeADC(sine(offset, rms_a * mv_per_a * divider * 1000, hz, phase), clock, noise, seed=7, conv_us=conv_us)
    pace = Pacer(clock.ticks_us, clock.ticks_add, clock.ticks_diff, clock.sleep_us)
    acs = ACS712(adc.read_uv, pace, mv_per_a=mv_per_a, divider=divider, mains_hz=hz, **kw)
    return acs, adc, clock


def test_acs712_rms_whole_cycles():
    for rms in (0.3, 1.0, 2.5):
        acs, adc, clock = _acs(rms, divider=2 / 3, offset=1666666, noise=3000.0)
        a = acs.read()
        assert abs(a - rms) <= 0.02 * rms, (rms, a)
        assert adc.reads == 200  # 5 cycles x 40
        assert clock.t_us == 100000  # exactly 5 x 20 ms


def test_acs712_60hz_window_is_exact():
    acs, adc, clock = _acs(2.0, mv_per_a=100.0, hz=60, samples_per_cycle=40, cycles=6)
    a = acs.read()
    assert abs(a - 2.0) <= 0.02 * 2.0
    assert clock.t_us == 100000  # 6 cycles of 16 666.7 us, no drift from the non-integer period


def test_acs712_pacer_absorbs_adc_time():
    # Each ADC read costs 60 us; a plain sleep of 500 us would stretch 5 cycles to 112 ms.
    acs, adc, clock = _acs(1.0, conv_us=60)
    a = acs.read()
    assert abs(a - 1.0) <= 0.02
    assert 100000 <= clock.t_us <= 100060


def test_acs712_zero_learns_offset_and_noise():
    clock = FakeTime()
    adc = FakeADC(const_uv(1680000), clock, noise_uv=4000.0, seed=3)  # 2.52 V x 2/3 divider, no current
    pace = Pacer(clock.ticks_us, clock.ticks_add, clock.ticks_diff, clock.sleep_us)
    acs = ACS712(adc.read_uv, pace, mv_per_a=185.0, divider=2 / 3)
    assert acs.offset_uv == 1666666
    # with the nominal offset, 13 mV of offset error reads as ~0.11 A
    assert acs.read() > 0.08
    off = acs.zero()
    assert abs(off - 1680000) < 1500
    assert approx(acs.noise_uv, 4000.0, 600.0)
    assert acs.read() < 0.02  # the noise floor is subtracted in quadrature


def test_acs712_zero_refuses_when_lamp_on_and_rail_faults():
    acs, adc, clock = _acs(1.0)
    before = acs.offset_uv
    assert "lamp not off" in str(raises(ValueError, acs.zero))
    assert acs.offset_uv == before
    clock = FakeTime()
    adc = FakeADC(const_uv(0), clock)  # sensor unpowered: output at 0 V
    pace = Pacer(clock.ticks_us, clock.ticks_add, clock.ticks_diff, clock.sleep_us)
    acs = ACS712(adc.read_uv, pace)
    assert "unpowered" in str(raises(ValueError, acs.read))
    acs, adc, clock = _acs(4.0)  # 4 A x 185 mV/A peaks at 3.55 V without a divider: clipped, so refused
    raises(ValueError, acs.read)


def test_acs712_with_zero_and_load():
    acs, adc, clock = _acs(0.45, divider=2 / 3, offset=1690000, noise=5000.0)
    adc.waveform = const_uv(1690000)
    acs.zero()
    adc.waveform = sine(1690000, 0.45 * 185 * 2 / 3 * 1000)
    a = acs.read()
    assert abs(a - 0.45) <= 0.02 * 0.45, a


def test_acs712_validation():
    f = int
    raises(ValueError, ACS712, f, f, mv_per_a=5)
    raises(ValueError, ACS712, f, f, mains_hz=55)
    raises(ValueError, ACS712, f, f, divider=2.0)
    raises(ValueError, ACS712, f, f, samples_per_cycle=4)
    raises(ValueError, ACS712, f, f, offset_uv=4000000)
    raises(ValueError, ACS712, f, f, noise_uv=-1.0)


# ---------------------------------------------------------------- LDR

class _ADC:
    def __init__(self, uv):
        self.uv = uv

    def read_uv(self):
        return self.uv


def _node_uv(r_ldr, r_fixed=10000, vcc=3300000):
    return int(vcc * r_ldr / (r_ldr + r_fixed))  # LDR to ground, fixed resistor to Vcc


def test_ldr_gl5528_curve():
    adc = _ADC(_node_uv(15000))
    ldr = LDR(adc)
    assert approx(ldr.read_lux(), 10.0, 0.01)  # R10 = 15 kOhm by construction of A
    assert approx(ldr.last_ohm, 15000, 2)
    adc.uv = _node_uv(3000)
    assert approx(ldr.read_lux(), 99.66, 0.1)  # 10 x (15/3)^1.4286
    adc.uv = _node_uv(75000)
    assert approx(ldr.read_lux(), 1.0, 0.01)


def test_ldr_on_top_wiring():
    # LDR to Vcc: V = Vcc x Rf / (R + Rf); 15 kOhm -> 1.32 V
    adc = _ADC(1320000)
    ldr = LDR(adc, ldr_on_top=True)
    assert approx(ldr.resistance(1320000), 15000, 1)
    assert approx(ldr.read_lux(), 10.0, 0.01)


def test_ldr_out_of_range_is_none_and_clamped():
    adc = _ADC(3300000)  # open LDR with an ADC that reaches the rail
    ldr = LDR(adc)
    assert ldr.read_lux() is None
    adc.uv = 0  # shorted LDR
    assert ldr.read_lux() is None
    adc.uv = _node_uv(5)  # 5 ohm: below r_min
    assert ldr.read_lux() is None
    adc.uv = _node_uv(3000000)  # 3 MOhm: above r_max
    assert ldr.read_lux() is None
    # 100 ohm is in range; its lux (12 844) is clamped to max_lux
    adc.uv = _node_uv(100)
    assert approx(ldr.read_lux(), 12844, 20)
    ldr = LDR(adc, max_lux=5000.0)
    assert ldr.read_lux() == 5000.0


def test_ldr_validation():
    adc = _ADC(0)
    raises(ValueError, LDR, adc, lux_a=0)
    raises(ValueError, LDR, adc, r_min_ohm=10, r_max_ohm=5)
    raises(ValueError, LDR, adc, v_min_uv=4000000)
    raises(ValueError, LDR, adc, samples=0)


def test_ldr_averages_samples():
    vals = [1000000, 1200000, 1100000, 1100000]
    class Seq:
        i = 0
        def read_uv(self):
            v = vals[self.i % 4]
            self.i += 1
            return v
    ldr = LDR(Seq(), samples=4)
    ldr.read_lux()
    assert ldr.last_uv == 1100000
    assert approx(ldr.last_ohm, 10000 * 1.1 / 2.2, 0.5)
