"""Schema of the "hw" config section (pins, sensors, Wi-Fi): config, owned by firmware/, read by drivers/esp32.py."""

from firmware.schema import Bool, Dict, Enum, Float, Int, Invalid, Lazy, Nullable, Str

# ESP32 (classic) pin facts. ADC2 (0, 2, 4, 12-15, 25-27) cannot be read while Wi-Fi is on, so analog inputs must be
# ADC1 = GPIO 32-39. GPIO 34-39 are input only. GPIO 6-11 drive the SPI flash and must never be touched.
ADC1_PINS = (32, 33, 34, 35, 36, 37, 38, 39)
INPUT_ONLY_PINS = (34, 35, 36, 37, 38, 39)
FLASH_PINS = (6, 7, 8, 9, 10, 11)


def _light():
    return Dict({
        "type": Enum(("bh1750", "veml7700", "ldr", "none"), "bh1750", doc="ambient light sensor fitted"),
        "addr": Nullable(Int(0x08, 0x77), doc="I2C address; null = the chip's default (bh1750 0x23, veml7700 0x10)"),
        "lux_gain": Float(0.01, 100.0, 1.0, doc="multiplier for the window/diffuser in front of the sensor"),
        "bh1750_mode": Enum(("continuous_high", "continuous_high2", "continuous_low"), "continuous_high"),
        "bh1750_mtreg": Int(31, 254, 69),
        "veml7700_gain": Enum(("1/8", "1/4", "1", "2"), "1/8"),
        "veml7700_it_ms": Enum(("25", "50", "100", "200", "400", "800"), "100"),
        "adc_pin": Int(0, 39, 34, doc="ldr: ADC1 pin (32..39)"),
        "r_fixed_ohm": Int(100, 10000000, 10000, doc="ldr: fixed divider resistor"),
        "ldr_on_top": Bool(False, doc="ldr: true when the LDR goes to Vcc and the fixed resistor to ground"),
        "vcc_mv": Int(1000, 5500, 3300, doc="ldr: divider supply"),
        "lux_a": Float(1e-3, 1e12, 9.244e6, doc="ldr: lux = lux_a x R^-lux_gamma (GL5528, R10 = 15 kOhm)"),
        "lux_gamma": Float(0.2, 5.0, 1.4286, doc="ldr: exponent = 1 / datasheet gamma (0.7 for GL5528)"),
        "r_min_ohm": Int(1, 1000000, 20),
        "r_max_ohm": Int(1000, 100000000, 2000000),
    })


def _meter():
    return Dict({
        "type": Enum(("ina219", "ina226", "acs712", "none"), "ina219", doc="lamp electrical meter fitted"),
        "addr": Nullable(Int(0x40, 0x4F), doc="ina219/ina226 I2C address; null = 0x40"),
        "shunt_ohm": Float(0.0001, 100.0, 0.1, doc="ina: shunt resistor"),
        "max_current_a": Float(0.001, 100.0, 2.0, doc="ina: largest expected current (sets the calibration)"),
        "adc_pin": Int(0, 39, 35, doc="acs712: ADC1 pin (32..39)"),
        "acs712_variant": Enum(("05B", "20A", "30A"), "05B", doc="acs712: 185 / 100 / 66 mV per A"),
        "divider": Float(0.05, 1.0, 0.6667, doc="acs712: ADC volts per sensor volt (10k/20k divider = 0.6667)"),
        "mains_hz": Int(50, 60, 50),
        "cycles": Int(1, 50, 5, doc="acs712: mains cycles per reading (blocks that long)"),
        "samples_per_cycle": Int(8, 200, 40),
        "nominal_v": Float(90.0, 260.0, 220.0, doc="acs712: mains volts used for power (the sensor cannot measure it)"),
        "pf": Float(0.3, 1.0, 0.95, doc="acs712: lamp power factor used for power (LED driver datasheet)"),
        "v_gain": Float(0.5, 2.0, 1.0, doc="calibration trim against a reference meter"),
        "a_gain": Float(0.5, 2.0, 1.0, doc="calibration trim against a reference meter"),
    })


def _wifi():
    return Dict({
        "ssid": Str(32, ""),
        "password": Str(64, ""),
        "backoff_min_s": Int(1, 3600, 5, doc="first retry delay after a failed connect"),
        "backoff_max_s": Int(1, 86400, 300, doc="retry delay cap (doubling)"),
        "attempt_s": Int(5, 120, 20, doc="how long one connect attempt may take"),
    })


def _check(hw, path):
    outs = (("pwm_pin", hw["pwm_pin"]), ("relay_pin", hw["relay_pin"]), ("i2c.scl", hw["i2c"]["scl"]),
            ("i2c.sda", hw["i2c"]["sda"]))
    for name, pin in outs:
        if pin is None:
            continue
        if pin in FLASH_PINS:
            raise Invalid(path + "." + name, "GPIO 6..11 belong to the flash chip")
        if pin in INPUT_ONLY_PINS:
            raise Invalid(path + "." + name, "GPIO 34..39 are input only")
    used = {}  # type: dict
    pins = list(outs)
    if hw["light"]["type"] == "ldr":
        pins.append(("light.adc_pin", hw["light"]["adc_pin"]))
    if hw["meter"]["type"] == "acs712":
        pins.append(("meter.adc_pin", hw["meter"]["adc_pin"]))
    for name, pin in pins:
        if pin is None:
            continue
        if name.endswith("adc_pin") and pin not in ADC1_PINS:
            raise Invalid(path + "." + name, "must be an ADC1 pin (32..39): ADC2 cannot be read while Wi-Fi is on")
        if pin in used:
            raise Invalid(path + "." + name, "GPIO %d already used by %s" % (pin, used[pin]))
        used[pin] = name
    m = hw["meter"]
    full_v = {"ina219": 0.32, "ina226": 0.08192}.get(m["type"])
    if full_v is not None and m["max_current_a"] * m["shunt_ohm"] > full_v * 1.0001:
        raise Invalid(path + ".meter.max_current_a", "x shunt_ohm exceeds the %s shunt range of %d mV"
                      % (m["type"], int(full_v * 1000 + 0.5)))
    if hw["meter"]["mains_hz"] not in (50, 60):
        raise Invalid(path + ".meter.mains_hz", "must be 50 or 60")
    if hw["wifi"]["backoff_max_s"] < hw["wifi"]["backoff_min_s"]:
        raise Invalid(path + ".wifi.backoff_max_s", "must be >= backoff_min_s")


def _hw():
    return Dict({
        "pwm_pin": Int(0, 39, 25, doc="PWM dimming output to the LED driver"),
        "pwm_freq": Int(100, 40000, 1000, doc="PWM Hz; >= 3000 when the PWM switches the LEDs directly (flicker)"),
        "pwm_invert": Bool(False, doc="true when the dimming interface inverts (e.g. an optocoupler to 1-10 V)"),
        "relay_pin": Nullable(Int(0, 39), 26, doc="relay output; null = no relay"),
        "relay_active_high": Bool(True),
        "boot_level": Float(0.0, 1.0, 1.0, doc="PWM duty and relay state from power-up until the firmware decides"),
        "i2c": Dict({
            "id": Int(0, 1, 0),
            "scl": Int(0, 39, 22),
            "sda": Int(0, 39, 21),
            "freq": Int(10000, 400000, 100000, doc="100 kHz: robust on the long wires of a lamp head"),
        }),
        "light": _light(),
        "meter": _meter(),
        "wifi": _wifi(),
    }, check=_check, doc="board hardware (ESP32)")


HW_SCHEMA = Lazy(_hw)
