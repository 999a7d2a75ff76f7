"""drivers/esp32.py wiring on CPython, with fake machine/network/esp32 modules (host_tests/fake_machine.py)."""

import datetime
import gc
import os
import time

import fake_machine
import pytest
from fakebus import BH1750Model, FakeTime, INA219Model, VEML7700Model, sine

from firmware.hw_config import HW_SCHEMA
from firmware.schema import Invalid


@pytest.fixture
def hw(tmp_path):
    f = fake_machine.install()
    import drivers.esp32 as board_mod

    yield f, board_mod, str(tmp_path / "data")
    fake_machine.uninstall()


def _board(hw, **over):
    f, mod, _ = hw
    return mod.make_board(dict(over))


def test_default_board_wiring(hw):
    f, mod, _ = hw
    f.i2c_devices[0x23] = BH1750Model()
    f.i2c_devices[0x40] = ina = INA219Model()
    b = _board(hw)
    # lamp on at boot (boot_level 1.0): PWM on GPIO 25 at 1 kHz, full duty; relay GPIO 26 driven high
    assert ("PWM", 25, 1000, 65535) in f.log
    assert ("Pin", 26, 3, 1) in f.log
    assert ("I2C", 0, 22, 21, 100000) in f.log
    assert sum(1 for e in f.log if e[0] == "I2C") == 1  # one bus shared by light and meter
    f.i2c_devices[0x23].lux = 120.0
    assert abs(b.light.read_lux() - 120.0) < 1.0
    ina.set(24.0, 0.05)  # 0.5 A through the default 0.1 ohm
    v, a, w, pf = b.meter.read()
    assert abs(v - 24.0) < 0.01 and abs(a - 0.5) < 0.001 and abs(w - 12.0) < 0.02 and pf == 1.0
    assert b.meter.zero() is None  # nothing to zero on a DC meter
    for attr in ("lamp", "light", "meter", "clock", "store", "wdt", "net", "system"):
        assert hasattr(b, attr)


def test_pwm_duty_math_and_invert(hw):
    f, mod, _ = hw
    b = _board(hw, light={"type": "none"}, meter={"type": "none"})
    pwm = f.pwms[0]
    for duty, u in ((0.0, 0), (1.0, 65535), (0.5, 32768), (0.25, 16384), (0.001, 66), (1.7, 65535), (-0.2, 0),
                    (float("nan"), 0)):
        b.lamp.set_output(duty)
        assert pwm.duties[-1] == u, (duty, pwm.duties[-1])
    fake_machine.install()  # a second, fresh board module
    import drivers.esp32 as mod2

    b2 = mod2.make_board({"pwm_invert": True, "boot_level": 0.0, "pwm_freq": 5000,
                          "light": {"type": "none"}, "meter": {"type": "none"}})
    pwm2 = b2.lamp.pwm
    assert pwm2.freq == 5000 and pwm2.duties[0] == 65535  # inverted: duty 0 -> output high
    b2.lamp.set_output(0.25)
    assert pwm2.duties[-1] == 65535 - 16384


def test_relay_polarity(hw):
    f, mod, _ = hw
    b = _board(hw, relay_active_high=False, relay_pin=27, boot_level=0.0, light={"type": "none"},
               meter={"type": "none"})
    assert ("Pin", 27, 3, 1) in f.log  # active-low relay, lamp off at boot: pin high
    b.lamp.set_relay(True)
    assert f.pins[27].history[-1] == 0
    b.lamp.set_relay(False)
    assert f.pins[27].history[-1] == 1
    b3 = _board(hw, relay_pin=None, light={"type": "none"}, meter={"type": "none"})
    b3.lamp.set_relay(True)  # no relay fitted: remembered, no pin touched
    assert b3.lamp.relay_on is True


def test_adc2_pins_refused(hw):
    f, mod, _ = hw
    e = pytest.raises(ValueError, _board, hw, light={"type": "ldr", "adc_pin": 25})
    assert "ADC1" in str(e.value) and "light.adc_pin" in str(e.value)
    e = pytest.raises(ValueError, _board, hw, meter={"type": "acs712", "adc_pin": 4})
    assert "meter.adc_pin" in str(e.value)
    with pytest.raises(ValueError, match="Wi-Fi"):
        mod._adc(14)
    adc = mod._adc(36)
    assert adc.atten == 3  # 11 dB


def test_ldr_light(hw):
    f, mod, _ = hw
    f.adc_uv[34] = lambda: 3300000 * 15000 // 25000  # GL5528 at 15 kOhm below 10 kOhm to 3.3 V = 10 lux
    b = _board(hw, light={"type": "ldr", "lux_gain": 2.0}, meter={"type": "none"})
    assert ("ADC", 34, 3) in f.log
    assert abs(b.light.read_lux() - 20.0) < 0.05  # x2 for the diffuser
    f.adc_uv[34] = lambda: 3300000  # open
    assert b.light.read_lux() is None


def test_absent_sensor_is_none_then_recovers(hw):
    f, mod, _ = hw
    b = _board(hw, light={"type": "veml7700"}, meter={"type": "ina226", "shunt_ohm": 0.01})
    assert b.light.read_lux() is None and b.light.errors >= 1
    assert b.meter.read() is None
    chip = f.i2c_devices[0x10] = VEML7700Model()  # connector re-seated: picked up on the next read
    chip.als = 100
    assert abs(b.light.read_lux() - 46.08) < 1e-6  # gain 1/8, 100 ms: 0.4608 lux per count
    b.light.dev.i2c.fail = 1  # a bus glitch is one lost sample, not an exception
    assert b.light.read_lux() is None
    assert abs(b.light.read_lux() - 46.08) < 1e-6


def test_acs712_meter(hw, monkeypatch):
    f, mod, _ = hw
    clock = FakeTime()
    monkeypatch.setattr(time, "ticks_us", clock.ticks_us, raising=False)
    monkeypatch.setattr(time, "sleep_us", clock.sleep_us, raising=False)
    wave = [sine(1666667, 0.5 * 185 * 0.6667 * 1000)]
    f.adc_uv[35] = lambda: wave[0](clock.t_us * 1e-6)
    b = _board(hw, light={"type": "none"}, meter={"type": "acs712", "pf": 0.9})
    v, a, w, pf = b.meter.read()
    assert v == 220.0 and pf == 0.9
    assert abs(a - 0.5) < 0.01
    assert abs(w - 220 * a * 0.9) < 1e-9
    assert b.meter.zero() is None  # current flowing: refused
    wave[0] = lambda t: 1670000
    assert abs(b.meter.zero() - 1670000) < 2


def test_reset_cause_mapping(hw):
    f, mod, _ = hw
    b = _board(hw, light={"type": "none"}, meter={"type": "none"})
    for code, label in ((1, "power_on"), (2, "hard"), (3, "wdt"), (4, "deepsleep"), (5, "soft"), (0, "hard")):
        f.reset_cause = code
        assert b.system.reset_cause() == label
    import machine

    machine.BROWNOUT_RESET = 6  # a port that names it
    f.reset_cause = 6
    assert b.system.reset_cause() == "brownout"


def test_system_misc(hw, monkeypatch):
    f, mod, _ = hw
    b = _board(hw, light={"type": "none"}, meter={"type": "none"})
    assert b.system.unique_id() == "240ac4123456"
    monkeypatch.setattr(gc, "mem_free", lambda: 54321, raising=False)
    assert b.system.mem_free() == 54321
    b.system.reset()
    assert f.log[-1] == ("reset",)
    assert b.system.mark_app_valid() is True and ("mark_app_valid",) in f.log


def test_store_is_the_shared_filestore(hw):
    # The atomic write itself is tested once, for every runtime, in test_filestore.py.
    from drivers.filestore import FileStore

    b = _board(hw, light={"type": "none"}, meter={"type": "none"})
    assert isinstance(b.store, FileStore)


def test_wdt(hw):
    f, mod, _ = hw
    b = _board(hw, light={"type": "none"}, meter={"type": "none"})
    b.wdt.feed()  # not started: nothing to feed
    assert f.wdts == []
    b.wdt.start(8000)
    b.wdt.feed()
    b.wdt.feed()
    assert f.wdts[0].timeout == 8000 and f.wdts[0].feeds == 2
    with pytest.raises(ValueError):
        b.wdt.start(10)


def test_clock(hw):
    f, mod, _ = hw
    b = _board(hw, light={"type": "none"}, meter={"type": "none"})
    when = datetime.datetime(2024, 11, 25, 12, 34, 56)
    t2k = int((when - datetime.datetime(2000, 1, 1)).total_seconds())
    b.clock.set_now(t2k)
    assert f.rtc_set[-1] == (2024, 11, 25, when.weekday(), 12, 34, 56, 0)
    b.clock.set_now(0)
    assert f.rtc_set[-1] == (2000, 1, 1, 5, 0, 0, 0, 0)  # 2000-01-01 was a Saturday
    # CPython's epoch is 1970: now() must still be t2k
    assert abs(b.clock.now() - (time.time() - 946684800)) < 2
    t = b.clock.ticks_ms()
    assert isinstance(t, int) and 0 <= t < 1 << 30


def test_wifi_backoff(hw):
    f, mod, _ = hw
    b = _board(hw, light={"type": "none"}, meter={"type": "none"},
               wifi={"ssid": "pju-padang", "password": "secret", "backoff_min_s": 5, "backoff_max_s": 40,
                     "attempt_s": 20})
    net = b.net
    assert f.wlans[0].iface == 0
    now = [1000]
    net.clock = lambda: now[0]
    net.rand = None

    def connects():
        return [e for e in f.log if e[0] == "wlan.connect"]

    assert net.connect() is False
    assert connects() == [("wlan.connect", "pju-padang", "secret")] and ("wlan.active", True) in f.log
    expected_gaps = [25000, 30000, 40000, 60000, 60000]  # attempt 20 s + backoff 5, 10, 20, 40, 40 (capped)
    for gap in expected_gaps:
        start = now[0]
        n = len(connects())
        for dt in (1, gap // 2, gap - 1):
            now[0] = start + dt
            net.connect()  # cheap: nothing happens before the deadline
        assert len(connects()) == n
        now[0] = start + gap
        net.connect()
        assert len(connects()) == n + 1
        assert f.log[-2] == ("wlan.disconnect",)  # the timed-out attempt is abandoned first
    assert net.up() is False and net.rssi() is None
    f.connected = True
    assert net.connect() is True and net.up() is True and net.rssi() == -61
    # after a drop the next attempt is immediate and the backoff starts again from 5 s
    f.connected = False
    n = len(connects())
    net.connect()
    assert len(connects()) == n + 1
    now[0] += 25000
    net.connect()
    assert len(connects()) == n + 2


def test_wifi_errors_jitter_and_no_ssid(hw):
    f, mod, _ = hw
    b = _board(hw, light={"type": "none"}, meter={"type": "none"})
    assert b.net.connect() is False and not [e for e in f.log if e[0] == "wlan.connect"]  # no ssid configured
    net = mod.Net(f.wlans[0], {"ssid": "x", "password": "", "backoff_min_s": 100, "backoff_max_s": 100,
                               "attempt_s": 10}, rand=lambda: 255, clock=lambda: 0)
    f.connect_raises = OSError("Wifi Internal Error")
    assert net.connect() is False
    assert net.errors == 1 and net.attempts == 1
    assert net._next == 10000 + 100000 * (768 + 510) // 1024  # 1.25 x backoff at the top of the jitter
    net2 = mod.Net(f.wlans[0], {"ssid": "x", "password": "", "backoff_min_s": 100, "backoff_max_s": 100,
                                "attempt_s": 10}, rand=lambda: 0, clock=lambda: 0)
    net2.connect()
    assert net2._next == 10000 + 75000
    # the real board draws jitter from os.urandom: always within 0.75 .. 1.25
    for _ in range(50):
        j = b.net._jitter(100000)
        assert 75000 <= j <= 125000


def test_hw_schema_defaults_and_checks():
    d = HW_SCHEMA.make_default()
    assert d["pwm_pin"] == 25 and d["relay_pin"] == 26 and d["relay_active_high"] is True
    assert d["pwm_freq"] == 1000 and d["i2c"]["scl"] == 22 and d["i2c"]["sda"] == 21
    assert d["light"]["type"] == "bh1750" and d["meter"]["type"] == "ina219" and d["meter"]["nominal_v"] == 220.0
    for bad, where in (({"pwm_pin": 35}, "hw.pwm_pin"), ({"relay_pin": 7}, "hw.relay_pin"),
                       ({"relay_pin": 25}, "hw.relay_pin"), ({"i2c": {"sda": 25}}, "hw.i2c.sda"),
                       ({"meter": {"type": "acs712", "mains_hz": 55}}, "hw.meter.mains_hz"),
                       ({"light": {"type": "ldr", "adc_pin": 35}, "meter": {"type": "acs712", "adc_pin": 35}},
                        "hw.meter.adc_pin"),
                       ({"meter": {"type": "ina226", "shunt_ohm": 0.1, "max_current_a": 2.0}},
                        "hw.meter.max_current_a"),
                       ({"wifi": {"backoff_min_s": 60, "backoff_max_s": 10}}, "hw.wifi.backoff_max_s"),
                       ({"light": {"typo": 1}}, "hw.light.typo")):
        with pytest.raises(Invalid) as e:
            HW_SCHEMA.check(bad, "hw")
        assert str(e.value).startswith(where), (bad, str(e.value))
    js = HW_SCHEMA.to_json_schema()
    assert js["properties"]["light"]["properties"]["type"]["enum"] == ["bh1750", "veml7700", "ldr", "none"]


def test_esp32_module_is_the_only_hardware_import():
    # The chip drivers must stay importable without machine (they run on the unix port and CPython).
    root = os.path.join(os.path.dirname(__file__), "..", "drivers")
    for name in ("ina219", "ina226", "bh1750", "veml7700", "acs712", "ldr"):
        with open(os.path.join(root, name + ".py")) as fh:
            src = fh.read()
        for mod in ("machine", "network", "esp32"):
            assert "import " + mod not in src, (name, mod)


def test_board_for_the_whole_node_config(hw):
    # main.py hands startup the node's whole config; the ESP32 board is built from its "hw" section.
    from firmware import config as configmod

    f, mod, _ = hw
    cfg = configmod.defaults()
    cfg["hw"]["light"] = {"type": "none"}
    cfg["hw"]["meter"] = {"type": "none"}
    cfg = configmod.validate(cfg)
    b = mod.board_for(cfg)
    assert ("PWM", cfg["hw"]["pwm_pin"], cfg["hw"]["pwm_freq"], 65535) in f.log
    assert b.light.read_lux() is None and b.meter.read() is None
