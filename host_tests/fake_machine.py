"""Fake `machine`, `network` and `esp32` modules (CPython only) that record calls, for testing drivers/esp32.py.

install() puts fresh fakes into sys.modules, forgets any imported drivers.esp32 and returns the Fakes holder.
"""

import sys
import types

from fakebus import FakeI2C


class Fakes:
    def __init__(self):
        self.log = []  # (what, args...) in call order
        self.i2c_devices = {}  # addr -> device model; what machine.I2C will answer
        self.adc_uv = {}  # pin -> callable returning uV
        self.reset_cause = 1
        self.connected = False
        self.rssi = -61
        self.connect_raises = None
        self.pins = {}
        self.pwms = []
        self.wdts = []
        self.rtc_set = []
        self.wlans = []


def _machine(f):
    m = types.ModuleType("machine")
    m.PWRON_RESET, m.HARD_RESET, m.WDT_RESET, m.DEEPSLEEP_RESET, m.SOFT_RESET = 1, 2, 3, 4, 5

    class Pin:
        IN, OUT, OPEN_DRAIN = 1, 3, 7

        def __init__(self, id, mode=None, pull=None, value=None):
            self.id = id
            self.mode = mode
            self.history = [] if value is None else [value]
            f.pins[id] = self
            f.log.append(("Pin", id, mode, value))

        def value(self, v=None):
            if v is None:
                return self.history[-1] if self.history else 0
            self.history.append(v)
            f.log.append(("Pin.value", self.id, v))

    class PWM:
        def __init__(self, pin, freq=None, duty_u16=None):
            self.pin = pin
            self.freq = freq
            self.duties = [duty_u16]
            f.pwms.append(self)
            f.log.append(("PWM", pin.id, freq, duty_u16))

        def duty_u16(self, v=None):
            if v is None:
                return self.duties[-1]
            if not isinstance(v, int) or not 0 <= v <= 65535:
                raise ValueError("duty_u16 out of range")  # as the real one
            self.duties.append(v)

    class ADC:
        ATTN_0DB, ATTN_2_5DB, ATTN_6DB, ATTN_11DB = 0, 1, 2, 3

        def __init__(self, pin, atten=None):
            self.pin = pin
            self.atten = atten
            f.log.append(("ADC", pin.id, atten))

        def read_uv(self):
            return int(f.adc_uv[self.pin.id]())

    class I2C(FakeI2C):
        def __init__(self, id, scl=None, sda=None, freq=400000):
            FakeI2C.__init__(self)
            self.devices = f.i2c_devices  # shared, so a test can plug a chip in later
            f.log.append(("I2C", id, scl.id, sda.id, freq))

    class RTC:
        def datetime(self, t=None):
            if t is None:
                return f.rtc_set[-1] if f.rtc_set else (2000, 1, 1, 5, 0, 0, 0, 0)
            f.rtc_set.append(tuple(t))

    class WDT:
        def __init__(self, id=0, timeout=5000):
            self.timeout = timeout
            self.feeds = 0
            f.wdts.append(self)

        def feed(self):
            self.feeds += 1

    m.Pin, m.PWM, m.ADC, m.I2C, m.RTC, m.WDT = Pin, PWM, ADC, I2C, RTC, WDT
    m.reset_cause = lambda: f.reset_cause
    m.reset = lambda: f.log.append(("reset",))
    m.unique_id = lambda: b"\x24\x0a\xc4\x12\x34\x56"
    return m


def _network(f):
    n = types.ModuleType("network")
    n.STA_IF, n.AP_IF = 0, 1
    n.STAT_IDLE, n.STAT_CONNECTING, n.STAT_GOT_IP = 1000, 1001, 1010

    class WLAN:
        IF_STA, IF_AP = 0, 1

        def __init__(self, iface):
            self.iface = iface
            self._active = False
            f.wlans.append(self)

        def active(self, v=None):
            if v is None:
                return self._active
            self._active = bool(v)
            f.log.append(("wlan.active", bool(v)))

        def isconnected(self):
            return f.connected

        def connect(self, ssid, key):
            f.log.append(("wlan.connect", ssid, key))
            if f.connect_raises:
                raise f.connect_raises

        def disconnect(self):
            f.log.append(("wlan.disconnect",))

        def status(self, param=None):
            if param == "rssi":
                return f.rssi
            return n.STAT_GOT_IP if f.connected else n.STAT_IDLE

    n.WLAN = WLAN
    return n


def _esp32(f):
    e = types.ModuleType("esp32")

    class Partition:
        @classmethod
        def mark_app_valid_cancel_rollback(cls):
            f.log.append(("mark_app_valid",))

    e.Partition = Partition
    return e


def install():
    f = Fakes()
    sys.modules["machine"] = _machine(f)
    sys.modules["network"] = _network(f)
    sys.modules["esp32"] = _esp32(f)
    sys.modules.pop("drivers.esp32", None)
    return f


def uninstall():
    for name in ("machine", "network", "esp32", "drivers.esp32"):
        sys.modules.pop(name, None)
