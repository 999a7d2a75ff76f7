"""The real ESP32 board: lamp PWM + relay, light sensor, meter, RTC, flash store, watchdog, Wi-Fi, machine info.

The only module that imports machine, network and esp32. `make_board(hw_cfg)` takes the "hw" config section
(firmware/hw_config.py) and returns an object with the attributes of docs/DESIGN.md "Drivers seam".

Power-up behaviour: the PWM and relay start at `boot_level` (default 1.0 = lamp on, the TALQ default), so a watchdog
or reconnect reboot at night does not blink the lamp off; in daytime the lamp burns only until the control loop runs.
"""

import gc
import os
import time

import esp32
import machine
import network

from drivers.filestore import FileStore
from firmware.hw_config import ADC1_PINS, HW_SCHEMA
from firmware.compat import ticks_add, ticks_diff, ticks_ms
from firmware.timebase import T2K_UNIX_OFFSET, civil_from_days, split, weekday

# ESP32 MicroPython counts time.time() from 2000-01-01 (= t2k). A port built with a 1970 epoch would be off by 30
# years; checking once costs nothing and keeps now() right on either.
_EPOCH_SHIFT = 0 if time.gmtime(0)[0] == 2000 else T2K_UNIX_OFFSET


def _adc(pin):
    if pin not in ADC1_PINS:
        raise ValueError("GPIO %d is not an ADC1 pin (32..39): ADC2 cannot be read while Wi-Fi is on" % pin)
    # 11 dB: full scale ~3.1 V; read_uv() applies the chip's eFuse calibration (linear ~0.15..2.45 V).
    return machine.ADC(machine.Pin(pin), atten=machine.ADC.ATTN_11DB)


def _duty_u16(duty, invert):
    # "not duty > 0" also catches NaN: a bad number must switch the output off, not raise in the loop.
    if not duty > 0:
        duty = 0.0
    elif duty > 1:
        duty = 1.0
    u = int(duty * 65535 + 0.5)
    return 65535 - u if invert else u


class Lamp:
    """PWM dimming output and an optional relay.

    Flicker: 1 kHz suits the PWM dimming input of an LED driver, which filters it to a steady current. When the PWM
    switches the LED string directly, light flickers at pwm_freq: use >= 3 kHz (IEEE 1789 no-effect region) — the
    ESP32 LEDC still gives > 13 bits of duty there."""

    def __init__(self, pwm, relay, active_high, invert):
        self.pwm = pwm
        self.relay = relay
        self.active_high = active_high
        self.invert = invert
        self.duty = None
        self.relay_on = None

    def set_output(self, duty):
        self.pwm.duty_u16(_duty_u16(duty, self.invert))
        self.duty = duty

    def set_relay(self, on):
        on = bool(on)
        if self.relay is not None:
            self.relay.value(1 if on == self.active_high else 0)
        self.relay_on = on


class _Sensor:
    """Holds one chip driver. A chip absent at boot (OSError) is retried at the next read, so a sensor plugged in
    or recovering later is picked up without a reboot. Bad parameters (ValueError) fail make_board at once."""

    def __init__(self, factory):
        self.factory = factory
        self.dev = None
        self.errors = 0
        self.last_error = None
        if factory is not None:
            try:
                self.dev = factory()
            except OSError as e:
                self._fail(e)

    def _fail(self, e):
        self.errors += 1
        self.last_error = e

    def _get(self):
        if self.dev is None and self.factory is not None:
            try:
                self.dev = self.factory()
            except (OSError, ValueError) as e:
                self._fail(e)
        return self.dev


class Light(_Sensor):
    def __init__(self, factory, gain):
        _Sensor.__init__(self, factory)
        self.gain = gain

    def read_lux(self):
        """Lux or None: the firmware treats None as a sensor error."""
        dev = self._get()
        if dev is None:
            return None
        try:
            lux = dev.read_lux()
        except (OSError, ValueError) as e:
            self._fail(e)
            return None
        return None if lux is None else lux * self.gain


class Meter(_Sensor):
    """(volts, amps, watts, pf) or None. INA219/INA226 measure DC: pf 1.0, amps as a magnitude (a reversed shunt
    must not look like a lamp failure). ACS712 measures amps only: volts = nominal_v, watts = V x A x pf, with
    nominal_v and pf from config — an estimate, see drivers/acs712.py."""

    def __init__(self, factory, cfg, ac):
        _Sensor.__init__(self, factory)
        self.ac = ac
        self.v_gain = cfg["v_gain"]
        self.a_gain = cfg["a_gain"]
        self.nominal_v = cfg["nominal_v"]
        self.pf = cfg["pf"]

    def read(self):
        dev = self._get()
        if dev is None:
            return None
        try:
            if self.ac:
                amps = dev.read() * self.a_gain
                volts = self.nominal_v * self.v_gain
                return (volts, amps, volts * amps * self.pf, self.pf)
            v, a, w = dev.read()
        except (OSError, ValueError) as e:
            self._fail(e)
            return None
        return (v * self.v_gain, abs(a) * self.a_gain, w * self.v_gain * self.a_gain, 1.0)

    def zero(self):
        """Learn the zero-current offset (ACS712 only; call while the lamp is known off). Returns the offset in uV,
        or None (not applicable, or refused because current was flowing). The firmware may persist the value."""
        dev = self._get()
        if not self.ac or dev is None:
            return None
        try:
            return dev.zero()
        except (OSError, ValueError) as e:
            self._fail(e)
            return None


class Clock:
    def __init__(self):
        self.rtc = machine.RTC()

    def ticks_ms(self):
        return ticks_ms()

    def now(self):
        return int(time.time()) - _EPOCH_SHIFT

    def set_now(self, t2k):
        n, s = split(t2k)
        y, m, d = civil_from_days(n)
        # RTC tuple: (year, month, day, weekday 0 = Monday, hours, minutes, seconds, subseconds)
        self.rtc.datetime((y, m, d, weekday(n), s // 3600, s // 60 % 60, s % 60, 0))


class Watchdog:
    """machine.WDT: once started it cannot be stopped or slowed down until the next reset — start it only when the
    main loop is about to feed it, and never from code that may block longer than the timeout."""

    def __init__(self):
        self.wdt = None
        self.timeout_ms = None

    def start(self, timeout_ms):
        if not isinstance(timeout_ms, int) or not 1000 <= timeout_ms <= 3600000:
            raise ValueError("wdt: timeout_ms must be an int in 1000..3600000")
        self.wdt = machine.WDT(timeout=timeout_ms)
        self.timeout_ms = timeout_ms

    def feed(self):
        if self.wdt is not None:
            self.wdt.feed()


class Net:
    """Wi-Fi station with a non-blocking connect(): cheap to call every loop; it starts an attempt only when the
    previous one had `attempt_s` to finish and the backoff (doubling from backoff_min_s to backoff_max_s, +-25 %
    jitter so a street of nodes does not retry in step after a power cut) has passed."""

    def __init__(self, wlan, cfg, rand=None, clock=ticks_ms):
        self.wlan = wlan
        self.ssid = cfg["ssid"]
        self.password = cfg["password"]
        self.min_ms = cfg["backoff_min_s"] * 1000
        self.max_ms = cfg["backoff_max_s"] * 1000
        self.attempt_ms = cfg["attempt_s"] * 1000
        self.rand = rand
        self.clock = clock
        self._delay = self.min_ms
        self._next = None  # ticks_ms of the next allowed attempt; None = now
        self._pending = False
        self.attempts = 0
        self.errors = 0
        self.last_error = None

    def up(self):
        try:
            return bool(self.wlan.isconnected())
        except OSError:
            return False

    def _jitter(self, ms):
        if self.rand is None:
            return ms
        return ms * (768 + 2 * (self.rand() & 0xFF)) // 1024  # 0.75 .. 1.25 x

    def connect(self):
        """Start a connect attempt if one is due. Returns True when the link is up."""
        if self.up():
            self._delay = self.min_ms
            self._next = None
            self._pending = False
            return True
        if not self.ssid:
            return False
        now = self.clock()
        if self._next is not None and ticks_diff(now, self._next) < 0:
            return False
        try:
            if not self.wlan.active():
                self.wlan.active(True)
            if self._pending:
                self.wlan.disconnect()  # abandon the attempt that timed out before starting a new one
            self.wlan.connect(self.ssid, self.password)
        except OSError as e:  # "Wifi Internal Error" and friends: count, and retry on the backoff
            self.errors += 1
            self.last_error = e
        self.attempts += 1
        self._pending = True
        self._next = ticks_add(now, self.attempt_ms + self._jitter(self._delay))
        self._delay = min(self._delay * 2, self.max_ms)
        return False

    def rssi(self):
        if not self.up():
            return None
        try:
            return int(self.wlan.status("rssi"))
        except (OSError, ValueError, TypeError):
            return None


# Checked in order; BROWNOUT_RESET is looked up defensively: the ESP32 port does not export it (1.29 stubs) and
# folds a brown-out into another cause, so "brownout" is reported only by a port that names it.
_CAUSES = (("BROWNOUT_RESET", "brownout"), ("PWRON_RESET", "power_on"), ("HARD_RESET", "hard"),
           ("WDT_RESET", "wdt"), ("SOFT_RESET", "soft"), ("DEEPSLEEP_RESET", "deepsleep"))


def reset_cause():
    """One of power_on, hard, wdt, soft, deepsleep, brownout. A code the port does not name (older firmware
    returns 0 for SDIO/unknown resets) is reported as "hard": an external reset we cannot attribute."""
    c = machine.reset_cause()
    for attr, label in _CAUSES:
        if getattr(machine, attr, None) == c:
            return label
    return "hard"


def seed():
    """A per-node, per-boot seed for backoff jitter: the hardware RNG."""
    return int.from_bytes(os.urandom(4), "little")


class System:
    def reset_cause(self):
        return reset_cause()

    def reset(self):
        machine.reset()

    def unique_id(self):
        return "".join("%02x" % b for b in machine.unique_id())

    def mem_free(self):
        return gc.mem_free()

    def mark_app_valid(self):
        """Confirm a freshly flashed OTA image so the bootloader does not roll back (harmless on every boot)."""
        try:
            esp32.Partition.mark_app_valid_cancel_rollback()
            return True
        except OSError:  # no OTA partition table on this board
            return False


def _light_factory(cfg, i2c):
    t = cfg["type"]
    if t == "bh1750":
        from drivers.bh1750 import BH1750

        addr = cfg["addr"] or 0x23
        mode, mt = cfg["bh1750_mode"], cfg["bh1750_mtreg"]
        return lambda: BH1750(i2c(), addr=addr, mode=mode, mtreg=mt)
    if t == "veml7700":
        from drivers.veml7700 import ADDR, VEML7700

        addr = cfg["addr"] or ADDR
        gain = {"1/8": 0.125, "1/4": 0.25, "1": 1.0, "2": 2.0}[cfg["veml7700_gain"]]
        it = int(cfg["veml7700_it_ms"])
        return lambda: VEML7700(i2c(), addr=addr, gain=gain, it_ms=it)
    if t == "ldr":
        from drivers.ldr import LDR

        adc = _adc(cfg["adc_pin"])
        kw = {"lux_a": cfg["lux_a"], "lux_gamma": cfg["lux_gamma"], "r_fixed_ohm": cfg["r_fixed_ohm"],
              "vcc_uv": cfg["vcc_mv"] * 1000, "ldr_on_top": cfg["ldr_on_top"], "r_min_ohm": cfg["r_min_ohm"],
              "r_max_ohm": cfg["r_max_ohm"]}
        return lambda: LDR(adc, **kw)
    return None


def _meter_factory(cfg, i2c):
    t = cfg["type"]
    addr = cfg["addr"] or 0x40
    if t == "ina219":
        from drivers.ina219 import INA219

        return lambda: INA219(i2c(), addr=addr, shunt_ohms=cfg["shunt_ohm"], max_current_a=cfg["max_current_a"])
    if t == "ina226":
        from drivers.ina226 import INA226

        return lambda: INA226(i2c(), addr=addr, shunt_ohms=cfg["shunt_ohm"], max_current_a=cfg["max_current_a"])
    if t == "acs712":
        from drivers.acs712 import ACS712, SENSITIVITY_MV_PER_A, Pacer

        adc = _adc(cfg["adc_pin"])
        pace = Pacer(time.ticks_us, ticks_add, ticks_diff, time.sleep_us)
        mv = SENSITIVITY_MV_PER_A[cfg["acs712_variant"]]
        return lambda: ACS712(adc.read_uv, pace, mv_per_a=mv, divider=cfg["divider"], mains_hz=cfg["mains_hz"],
                              cycles=cfg["cycles"], samples_per_cycle=cfg["samples_per_cycle"])
    return None


class _SharedI2C:
    """One I2C bus for every chip, made on first use so a board without I2C sensors never claims the pins."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.bus = None

    def __call__(self):
        if self.bus is None:
            c = self.cfg
            self.bus = machine.I2C(c["id"], scl=machine.Pin(c["scl"]), sda=machine.Pin(c["sda"]), freq=c["freq"])
        return self.bus


class Board:
    """The DESIGN seam: lamp, light, meter, clock, store, wdt, net, system (+ cfg, the normalised hw section)."""

    def __init__(self, cfg, lamp, light, meter, clock, store, wdt, net, system):
        self.cfg = cfg
        self.lamp = lamp
        self.light = light
        self.meter = meter
        self.clock = clock
        self.store = store
        self.wdt = wdt
        self.net = net
        self.system = system


def board_for(cfg):
    """The board for the node's whole validated config (what main.py/startup pass): built from its "hw" section."""
    return make_board(cfg["hw"])


def make_board(hw_cfg):
    """Validate the "hw" section (raises schema.Invalid naming the field) and build the board."""
    cfg = HW_SCHEMA.check(hw_cfg, "hw")
    relay = None
    on = cfg["boot_level"] > 0
    if cfg["relay_pin"] is not None:
        relay = machine.Pin(cfg["relay_pin"], machine.Pin.OUT, value=1 if on == cfg["relay_active_high"] else 0)
    pwm = machine.PWM(machine.Pin(cfg["pwm_pin"]), freq=cfg["pwm_freq"],
                      duty_u16=_duty_u16(cfg["boot_level"], cfg["pwm_invert"]))
    lamp = Lamp(pwm, relay, cfg["relay_active_high"], cfg["pwm_invert"])
    lamp.duty = cfg["boot_level"]
    lamp.relay_on = on
    i2c = _SharedI2C(cfg["i2c"])
    mcfg = cfg["meter"]
    return Board(cfg, lamp,
                 Light(_light_factory(cfg["light"], i2c), cfg["light"]["lux_gain"]),
                 Meter(_meter_factory(mcfg, i2c), mcfg, mcfg["type"] == "acs712"),
                 Clock(), FileStore("."), Watchdog(),
                 Net(network.WLAN(network.WLAN.IF_STA), cfg["wifi"], rand=lambda: os.urandom(1)[0]),
                 System())
