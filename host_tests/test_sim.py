# runtimes: cpython micropython
"""drivers/sim.py: the simulated street (light, electrics, faults) and the board's clocks, on both runtimes."""

import json
import os

from drivers.filestore import FileStore
from drivers.sim import (CLOCK_FILE, CYCLING_OFF_S, CYCLING_ON_S, DEFAULT_START_T2K, OVER_POWER, SIM_SCHEMA,
                         TICKS_MASK, UNDER_POWER, SimClock, SimRadio, SimWorld, clear_sky_lux, load_sim, make_board)
from firmware import astro
from firmware.schema import Invalid
from firmware.timebase import days_from_civil
from mini import approx, raises

PADANG_OFFSET_S = 7 * 3600
DAY = days_from_civil(2026, 3, 20)  # equinox: sun nearly through the zenith at Padang


def _local(h, m=0):
    """t2k of local Padang time h:m on DAY."""
    return DAY * 86400 + h * 3600 + m * 60 - PADANG_OFFSET_S


def _world(**kw):
    return SimWorld(kw)  # SimWorld validates and fills in the defaults itself


def _tmpdir():
    name = "/tmp/sim_test_" + "".join("%02x" % b for b in os.urandom(6))
    os.mkdir(name)
    return name


def _rmtree(d):
    for n in os.listdir(d):
        os.remove(d + "/" + n)
    os.rmdir(d)


class FakeTime:
    """Injected host clocks: real wall ms and monotonic ms, moved by the test."""

    def __init__(self, real=1700000000000, mono=0):
        self.real = real
        self.mono = mono

    def advance(self, ms):
        self.real += ms
        self.mono += ms

    def real_ms(self):
        return self.real

    def mono_ms(self):
        return self.mono


def _sun_event_t2k(depression, which):
    rise_set = astro.sun_times(2026, 3, 20, -0.95, 100.35, 0, depression)
    minute = rise_set[1] if which == "set" else rise_set[0]
    return DAY * 86400 + int(minute * 60)


# --- light -----------------------------------------------------------------------------------------------------


def test_clear_sky_curve_reference_points():
    assert 300 <= clear_sky_lux(-0.833) <= 600  # sunset
    assert 3 <= clear_sky_lux(-6.0) <= 10  # end of civil twilight
    assert clear_sky_lux(-12.0) < 0.05
    assert clear_sky_lux(-30.0) < 0.002
    assert 90000 <= clear_sky_lux(90.0) <= 110000
    assert 10000 <= clear_sky_lux(10.0) <= 20000


def test_clear_sky_curve_rises_smoothly():
    prev = clear_sky_lux(-40.0)
    e = -40.0
    while e < 89.9:
        e += 0.05
        lux = clear_sky_lux(e)
        assert lux > prev
        # Smooth: no step of more than a few % per 0.05 degree anywhere (twilight: ~0.5 decade/degree at most).
        assert lux / prev < 1.08, (e, prev, lux)
        prev = lux


def test_padang_day_night_twilight():
    w = _world(cloudiness=0.0, headlights_per_hour=0.0)
    assert w.lux_at(_local(12, 15)) > 80000  # noon at the equinox: sun nearly overhead
    assert w.lux_at(_local(0)) < 0.01
    assert w.lux_at(_local(3)) < 0.01
    sunset = _sun_event_t2k(0.833, "set")
    assert 15 * 3600 < sunset - DAY * 86400 + PADANG_OFFSET_S < 19 * 3600  # ~18:29 local
    assert 300 <= w.lux_at(sunset) <= 600
    civil = _sun_event_t2k(6.0, "set")
    assert 3 <= w.lux_at(civil) <= 10
    sunrise = _sun_event_t2k(0.833, "rise")
    assert 300 <= w.lux_at(sunrise) <= 600
    # Dusk is monotonic minute by minute from an hour before sunset to an hour after.
    prev = None
    for t in range(sunset - 3600, sunset + 3600, 60):
        lux = w.lux_at(t)
        if prev is not None:
            assert lux < prev
        prev = lux


def test_clouds_dim_the_day_slowly_and_deterministically():
    w = _world(cloudiness=1.0, headlights_per_hour=0.0)
    lo, hi = 1.0, 0.0
    prev = w.cloud_factor(_local(6))
    for t in range(_local(6), _local(18), 10):
        f = w.cloud_factor(t)
        assert 0.1 <= f <= 1.0
        assert abs(f - prev) < 0.05  # slow: clouds drift, they do not flicker
        prev = f
        lo, hi = min(lo, f), max(hi, f)
    assert hi - lo > 0.3  # but they do change over a day
    clear = _world(cloudiness=0.0)
    assert clear.cloud_factor(_local(12)) == 1.0
    t = _local(12)
    assert w.lux_at(t) < clear.lux_at(t) or w.cloud_factor(t) == 1.0


def test_same_seed_same_world_other_seed_other_world():
    a = _world(seed=42)
    b = _world(seed=42)
    c = _world(seed=43)
    differs = 0
    for t in range(_local(5), _local(21), 137):
        assert a.lux_at(t) == b.lux_at(t)
        assert a.sensor_lux(t) == b.sensor_lux(t)
        if a.lux_at(t) != c.lux_at(t):
            differs += 1
    assert differs > 50
    # The same instant asked twice, or after other questions, gives the same answer (a function of time).
    t = _local(19, 30)
    first = a.sensor_lux(t)
    a.sensor_lux(t + 5)
    assert a.sensor_lux(t) == first


def test_headlights_at_night_are_short_bright_and_rare():
    w = _world(seed=7, headlights_per_hour=6.0, cloudiness=0.0)
    start, end = _local(20), _local(20) + 8 * 3600
    spikes = 0
    lit_s = 0
    prev = 0.0
    longest = run = 0
    for t in range(start, end):
        h = w.headlight_lux(t)
        if h > 0.0:
            assert 1500.0 <= h <= 10000.0
            lit_s += 1
            run += 1
            longest = max(longest, run)
            if prev == 0.0:
                spikes += 1
        else:
            run = 0
        prev = h
    assert 20 <= spikes <= 90  # ~48 expected in 8 h at 6/h
    assert lit_s < 0.02 * (end - start)  # rare: well under 2 % of the night
    assert longest <= 10  # a few seconds each (two overlapping cars at most)
    # A spike shows in the ambient lux at night ...
    t_spike = None
    for t in range(start, end):
        if w.headlight_lux(t) > 0:
            t_spike = t
            break
    assert t_spike is not None and w.lux_at(t_spike) > 1000
    # ... never in daylight, and not at all with a rate of 0.
    noon = _local(12)
    assert w.lux_at(noon) == clear_sky_lux(w.sun_elevation(noon)) * w.cloud_factor(noon)
    none = _world(seed=7, headlights_per_hour=0.0)
    assert all(none.headlight_lux(t) == 0.0 for t in range(start, start + 3600))


def test_sensor_noise_is_small():
    w = _world(lux_noise=0.02, headlights_per_hour=0.0)
    for t in range(_local(9), _local(16), 600):
        assert abs(w.sensor_lux(t) / w.lux_at(t) - 1.0) <= 0.02 + 1e-9


# --- electrics -------------------------------------------------------------------------------------------------


def test_led_power_follows_duty_instantly():
    w = _world(lamp={"nominal_w": 60.0, "standby_w": 1.0})
    assert w.power_truth(1.0, True, 0) == 60.0
    assert approx(w.power_truth(0.5, True, 0), 30.5, 1e-9)
    assert w.power_truth(0.0, True, 0) == 1.0  # the driver's small floor
    assert w.power_truth(1.0, False, 100) == 0.0
    prev = -1.0
    for i in range(11):
        p = w.power_truth(i / 10.0, True, 0)
        assert p > prev
        prev = p
    v, a, watts, pf = w.lamp_electrical(1.0, True, 0)
    assert (v, watts) == (220.0, 60.0) and 0.9 <= pf <= 1.0 and approx(a, 60.0 / (220.0 * pf), 1e-9)
    assert w.lamp_electrical(0.7, False, 0)[1:] == (0.0, 0.0, 0.0)
    # Drivers lose power factor at light load.
    assert w.lamp_electrical(0.1, True, 0)[3] < w.lamp_electrical(1.0, True, 0)[3]


def test_noisy_readings_are_plausible_and_consistent():
    w = _world(mains_v=220.0, mains_noise_v=3.0)
    for t in range(_local(18), _local(20), 97):
        v, a, watts, pf = w.lamp_electrical(1.0, True, 1000, t)
        assert 216.0 <= v <= 224.0
        assert abs(watts - 60.0) <= 0.6 + 1e-9
        assert approx(watts, v * a * pf, 1e-6)  # never an "impossible" W > V x A reading


def test_hps_warmup_ramps_power_and_energy_integrates():
    w = _world(lamp={"nominal_w": 100.0, "standby_w": 0.0, "warmup_s": 240})
    assert approx(w.power_truth(1.0, True, 0), 30.0, 1e-9)
    mid = w.power_truth(1.0, True, 120)
    assert 30.0 < mid < 100.0
    assert w.power_truth(1.0, True, 240) == 100.0
    assert w.power_truth(1.0, True, 5000) == 100.0
    a0 = w.lamp_electrical(1.0, True, 0)[1]
    afull = w.lamp_electrical(1.0, True, 600)[1]
    assert a0 > 1.3 * afull  # a cold HPS arc draws more current
    # Energy over the run-up: 0.3 + 0.7 x smoothstep averages 0.65 of full power.
    ws = 0.0
    n = 2400
    for i in range(n):
        ws += w.power_truth(1.0, True, (i + 0.5) * 240.0 / n) * 240.0 / n
    assert approx(ws, 0.65 * 100.0 * 240.0, 1.0)
    led = _world()
    assert led.power_truth(1.0, True, 0) == led.power_truth(1.0, True, 1000)


# --- faults ----------------------------------------------------------------------------------------------------


def _faulty_board(kind, t_from, t_to, **extra):
    ft = FakeTime()
    d = _tmpdir()
    sim = {"start_t2k": t_from - 100, "faults": [{"kind": kind, "from": t_from, "to": t_to}]}
    sim.update(extra)
    b = make_board(None, d, sim, "power_on", ft.real_ms, ft.mono_ms)
    return b, ft, d


def test_fault_windows_light():
    t0 = _local(19)
    b, ft, d = _faulty_board("light_dead", t0, t0 + 600)
    try:
        assert b.light.read_lux() is not None  # before the window
        ft.advance(100 * 1000)
        assert b.light.read_lux() is None
        ft.advance(599 * 1000)
        assert b.light.read_lux() is None
        ft.advance(1000)
        assert b.light.read_lux() is not None  # "to" is exclusive
    finally:
        _rmtree(d)
    b, ft, d = _faulty_board("light_stuck", t0, None, headlights_per_hour=0.0)
    try:
        ft.advance(100 * 1000)
        stuck = b.light.read_lux()
        ft.advance(3600 * 1000)  # an hour later, deep in the night
        assert b.light.read_lux() == stuck
        assert b.world.lux_at(b.clock.world_now()) < stuck / 10
    finally:
        _rmtree(d)


def test_fault_windows_lamp_and_meter():
    t0 = _local(19)
    b, ft, d = _faulty_board("lamp_dead", t0, t0 + 60)
    try:
        b.lamp.set_output(1.0)
        b.lamp.set_relay(True)
        assert b.meter.read()[1] > 0.2
        ft.advance(110 * 1000)
        r = b.meter.read()
        assert r[1] == 0.0 and r[2] == 0.0 and r[0] > 200  # mains present, no current
        ft.advance(60 * 1000)
        assert b.meter.read()[1] > 0.2
    finally:
        _rmtree(d)
    b, ft, d = _faulty_board("relay_stuck_on", t0, None)
    try:
        b.lamp.set_output(1.0)
        b.lamp.set_relay(False)
        assert b.meter.read()[2] == 0.0
        ft.advance(200 * 1000)
        assert b.meter.read()[2] > 50.0  # current flows though the relay is commanded open
    finally:
        _rmtree(d)
    b, ft, d = _faulty_board("meter_dead", t0, t0 + 10)
    try:
        assert b.meter.read() is not None
        ft.advance(105 * 1000)
        assert b.meter.read() is None
        ft.advance(10 * 1000)
        assert b.meter.read() is not None
    finally:
        _rmtree(d)
    b, ft, d = _faulty_board("over_current", t0, None)
    try:
        b.lamp.set_output(1.0)
        b.lamp.set_relay(True)
        a_ok = b.meter.read()[1]
        ft.advance(100 * 1000)
        v, a, w, pf = b.meter.read()
        assert 1.4 < a / a_ok < 1.6
        assert approx(w, v * a * pf, 1e-6)
    finally:
        _rmtree(d)


def test_under_and_over_power_scale_watts_and_amps_alike():
    # under_power: part of the LED strings open; over_power: an overdriving driver. Power and current move together
    # (the same power factor), the lamp stays lit and the reading stays physically possible.
    t0 = _local(20)
    for kind, k in (("under_power", UNDER_POWER), ("over_power", OVER_POWER)):
        b, ft, d = _faulty_board(kind, t0, t0 + 600)
        try:
            b.lamp.set_output(1.0)
            b.lamp.set_relay(True)
            v0, a0, w0, pf0 = b.meter.read()
            ft.advance(200 * 1000)
            v, a, w, pf = b.meter.read()
            assert approx(w / w0, k, 0.03) and approx(a / a0, k, 0.05), (kind, w / w0, a / a0)
            assert approx(pf, pf0, 1e-6) and approx(w, v * a * pf, 1e-6)
            assert approx(b.meter.true_watts() / (b.world.lamp["nominal_w"]), k, 1e-6)  # the truth has it too
            ft.advance(600 * 1000)
            assert approx(b.meter.read()[2] / w0, 1.0, 0.03)  # the window ended
        finally:
            _rmtree(d)


def test_cycling_drops_out_a_minute_every_few_minutes():
    t0 = _local(19)
    b, ft, d = _faulty_board("cycling", t0, None, lamp={"warmup_s": 60})
    try:
        b.lamp.set_output(1.0)
        b.lamp.set_relay(True)
        ft.advance(100 * 1000)  # now exactly at the fault start
        period = CYCLING_ON_S + CYCLING_OFF_S
        dark_s = 0
        dark_at = set()
        w_before = w_after = None
        # Counted on the fly: a list of 600 floats would fragment a small MicroPython heap.
        for s in range(2 * period):
            r = b.meter.read()
            if r[1] == 0.0:
                dark_s += 1
                dark_at.add(s)
            if s == CYCLING_ON_S - 2:
                w_before = r[2]
            if s == period:
                w_after = r[2]
            ft.advance(1000)
        assert dark_s == 2 * CYCLING_OFF_S
        assert CYCLING_ON_S in dark_at and CYCLING_ON_S - 1 not in dark_at and period not in dark_at
        # After each drop-out the lamp re-strikes: warm-up again (low power right after coming back).
        assert w_after < 0.5 * w_before
    finally:
        _rmtree(d)


def _net_board(t0, windows):
    """A board whose world starts at t0 with these (from, to) offsets as net_down windows → (board, ft, dir)."""
    ft = FakeTime()
    d = _tmpdir()
    sim = {"start_t2k": t0, "net_down": [{"from": t0 + a, "to": t0 + z} for a, z in windows]}
    return make_board(None, d, sim, "power_on", ft.real_ms, ft.mono_ms), ft, d


def test_net_down_windows_and_rssi():
    t0 = _local(19)
    b, ft, d = _net_board(t0, [(10, 20)])
    try:
        assert b.net.up()
        r = b.net.rssi()
        assert isinstance(r, int) and -80 <= r <= -40
        ft.advance(15 * 1000)
        assert not b.net.up() and b.net.rssi() is None
        ft.advance(10 * 1000)
        assert b.net.up()
        b.net.connect()
        assert b.net.connects == 1
    finally:
        _rmtree(d)


class FakeHostSocket:
    """The host's socket, as a unit-test fake: records what was sent, hands out what the test queued."""

    def __init__(self, host):
        self.host = host
        self.sent = []
        self.inbox = []
        self.closed = False
        self.blocking = True
        self.timeout = None
        self.connected = None

    def connect(self, addr):
        self.connected = addr

    def write(self, buf, n):
        self.sent.append(bytes(buf[:n]))
        return n

    def sendto(self, buf, addr):
        self.sent.append(bytes(buf))
        return len(buf)

    def read(self, n):
        return self.inbox.pop(0)[:n] if self.inbox else None

    def recv(self, n):
        if not self.inbox:
            raise OSError(11)
        return self.inbox.pop(0)[:n]

    def setblocking(self, flag):
        self.blocking = flag

    def settimeout(self, t):
        self.timeout = t

    def fileno(self):
        return 42

    def close(self):
        self.closed = True


class FakeHostModule:
    AF_INET = 2
    SOCK_STREAM = 1
    SOCK_DGRAM = 2

    def __init__(self):
        self.made = []

    def socket(self, *args):
        s = FakeHostSocket(self)
        self.made.append((args, s))
        return s

    def getaddrinfo(self, host, port, *args):
        return [(2, 1, 0, "", (host, port))]


def test_radio_cuts_connections_for_good_and_refuses_new_ones_while_the_net_is_down():
    t0 = _local(19)
    b, ft, d = _net_board(t0, [(10, 20), (100, 101)])
    try:
        host = FakeHostModule()
        radio = SimRadio(b.world, b.clock, host)
        assert radio.AF_INET == 2 and radio.SOCK_DGRAM == 2  # constants are the host's
        assert radio.getaddrinfo("broker", 1883)[0][-1] == ("broker", 1883)
        s = radio.socket()
        raw = host.made[0][1]
        s.settimeout(5)
        s.connect(("127.0.0.1", 1883))
        assert raw.connected == ("127.0.0.1", 1883)
        assert s.write(b"abc", 2) == 2 and raw.sent == [b"ab"]
        raw.inbox.append(b"\x20\x02")
        assert s.read(1) == b"\x20"
        assert s.ioctl(10, 0) == 42  # poll waits on the host socket itself
        ft.advance(15 * 1000)  # inside the first window
        assert not b.net.up()
        assert s.write(b"lost", 4) == 4 and raw.sent == [b"ab"]  # written into the air
        raw.inbox.append(b"\x30")
        assert s.read(1) is None and raw.inbox == []  # what the broker sent never arrives (drained, lost)
        assert raw.timeout == 5  # the socket's own timeout is back after draining
        s2 = radio.socket(2, 1)
        assert raises(OSError, s2.connect, ("127.0.0.1", 1883)).args[0] == 113  # EHOSTUNREACH
        ft.advance(10 * 1000)  # the net is back: the old connection stays dead, a new one works
        assert b.net.up()
        assert s.write(b"x", 1) == 1 and raw.sent == [b"ab"]
        raw.inbox.append(b"")  # the broker gave up on us and closed: met as a timeout
        assert raises(OSError, s.read, 1).args[0] == 110
        s3 = radio.socket()
        s3.connect(("127.0.0.1", 1883))
        assert s3.write(b"ok", 2) == 2 and host.made[-1][1].sent == [b"ok"]
        # A window the node slept through (t0+100..101, never seen "down") still kills the connection.
        ft.advance(80 * 1000)
        assert b.net.up()
        assert s3.write(b"late", 4) == 4 and host.made[-1][1].sent == [b"ok"]
        s3.close()
        assert host.made[-1][1].closed
    finally:
        _rmtree(d)


def test_radio_loses_datagrams_only_while_the_net_is_down():
    t0 = _local(19)
    b, ft, d = _net_board(t0, [(10, 20)])
    try:
        host = FakeHostModule()
        radio = SimRadio(b.world, b.clock, host)
        u = radio.socket(radio.AF_INET, radio.SOCK_DGRAM)
        raw = host.made[0][1]
        u.setblocking(False)
        assert u.sendto(b"ntp?", ("pool", 123)) == 4 and raw.sent == [b"ntp?"]
        ft.advance(15 * 1000)
        assert u.sendto(b"lost", ("pool", 123)) == 4 and raw.sent == [b"ntp?"]
        raw.inbox.append(b"answer")
        assert raises(OSError, u.recv, 64).args[0] == 11 and raw.inbox == []  # EAGAIN, the datagram lost
        assert raw.blocking is False
        ft.advance(10 * 1000)
        raw.inbox.append(b"answer")
        assert u.recv(64) == b"answer"  # datagrams are not a connection: the next one gets through
        assert b.world.net_lost_between(t0 + 5, t0 + 10) and not b.world.net_lost_between(t0 + 20, t0 + 30)
        assert b.world.net_lost_between(t0, t0 + 100) and not b.world.net_lost_between(t0, t0 + 9)
    finally:
        _rmtree(d)


# --- clocks ----------------------------------------------------------------------------------------------------


def test_clock_runs_at_speed_and_set_now_rebases():
    ft = FakeTime()
    c = SimClock(SIM_SCHEMA.check({"speed": 720, "start_t2k": 800000000}), None, "power_on", ft.real_ms, ft.mono_ms)
    assert c.now() == 800000000
    ft.advance(1000)
    assert c.now() == 800000720
    ft.advance(5000)
    assert c.world_now() == 800000000 + 6 * 720
    c.set_now(900000000)
    assert c.now() == 900000000
    ft.advance(500)
    assert c.now() == 900000360
    assert c.world_now() == 800000000 + 6 * 720 + 360  # the world does not care what the node believes
    ticks_before = c.ticks_ms()
    ft.advance(1000)
    assert c.ticks_ms() - ticks_before == 1000  # ticks stay real: 1000 ms, not 720 s


def test_ticks_are_masked_to_30_bits_and_wrap():
    ft = FakeTime(mono=0)
    c = SimClock(SIM_SCHEMA.check({"ticks_offset": TICKS_MASK - 999}), None, "power_on", ft.real_ms, ft.mono_ms)
    t1 = c.ticks_ms()
    assert t1 == TICKS_MASK - 999
    ft.advance(1500)
    t2 = c.ticks_ms()
    assert t2 == 500  # wrapped past 2^30
    # The 2^30 ticks_diff (what a 32-bit port computes) sees 1500 ms across the wrap.
    assert ((t2 - t1 + (1 << 29)) & TICKS_MASK) - (1 << 29) == 1500
    ft.mono = (1 << 40) + 3  # a host monotonic clock far beyond 30 bits still maps into range
    assert 0 <= c.ticks_ms() <= TICKS_MASK


def _boot(d, ft, cause, **sim):
    return SimClock(SIM_SCHEMA.check(sim), FileStore(d), cause, ft.real_ms, ft.mono_ms)


def test_rtc_lost_at_power_on_restarts_at_2000_epoch():
    d = _tmpdir()
    ft = FakeTime()
    sim = {"start_t2k": DEFAULT_START_T2K, "rtc_valid_at_boot": False, "speed": 10}
    try:
        c = _boot(d, ft, "power_on", **sim)
        assert 0 <= c.now() < 5 and c.rtc_lost  # 2000-01-01 00:00
        assert c.world_now() == DEFAULT_START_T2K
        ft.advance(2000)
        assert c.now() == 20  # the lost RTC runs at the world's speed from 0
        c.set_now(DEFAULT_START_T2K + 20)  # NTP fixed it
        ft.advance(3000)
        # Soft and watchdog resets keep the RTC running (the world too, through the downtime).
        for cause in ("soft", "wdt"):
            c = _boot(d, ft, cause, **sim)
            assert c.now() == c.world_now() == DEFAULT_START_T2K + 50
            assert not c.rtc_lost
        # A power cut without battery loses it again; the world keeps going.
        c = _boot(d, ft, "power_on", **sim)
        assert c.now() == 0 and c.world_now() == DEFAULT_START_T2K + 50
        ft.advance(1000)
        c.set_now(DEFAULT_START_T2K + 60)
        # With a battery the set time survives a power cut.
        c = _boot(d, ft, "power_on", rtc_battery=True, **sim)
        assert c.now() == DEFAULT_START_T2K + 60
        saved = json.loads(FileStore(d).read(CLOCK_FILE))
        assert saved["rtc_offset"] == 0
    finally:
        _rmtree(d)


def test_rtc_valid_at_boot_and_no_rtc_fault():
    d = _tmpdir()
    ft = FakeTime()
    try:
        c = _boot(d, ft, "power_on", start_t2k=DEFAULT_START_T2K)
        assert c.now() == DEFAULT_START_T2K and not c.rtc_lost
        _rmtree(d)
        os.mkdir(d)
        sim = SIM_SCHEMA.check({"start_t2k": DEFAULT_START_T2K, "rtc_battery": True,
                                "faults": [{"kind": "no_rtc", "from": 0, "to": None}]})
        b = make_board(None, d, sim, "soft", ft.real_ms, ft.mono_ms)
        assert b.clock.now() < 5  # no RTC at all: lost at every boot, even a soft one with a battery
        b.clock.set_now(DEFAULT_START_T2K)
        b = make_board(None, d, sim, "soft", ft.real_ms, ft.mono_ms)
        assert b.clock.now() < 5
    finally:
        _rmtree(d)


def test_world_restarts_when_its_parameters_change():
    d = _tmpdir()
    ft = FakeTime()
    try:
        _boot(d, ft, "power_on", start_t2k=800000000)
        ft.advance(10000)
        assert _boot(d, ft, "soft", start_t2k=800000000).world_now() == 800000010
        assert _boot(d, ft, "soft", start_t2k=900000000).world_now() == 900000000  # a new sim.json: a new world
    finally:
        _rmtree(d)


# --- board and sim.json ----------------------------------------------------------------------------------------


def test_sim_schema_defaults_and_refusals():
    s = SIM_SCHEMA.check({})
    assert (s["lat"], s["lon"], s["speed"], s["faults"]) == (-0.95, 100.35, 1.0, [])
    assert s["start_t2k"] == DEFAULT_START_T2K
    e = raises(Invalid, SIM_SCHEMA.check, {"sped": 2})
    assert "sped" in str(e)
    e = raises(Invalid, SIM_SCHEMA.check, {"faults": [{"kind": "lamp_dead", "from": 10, "to": 10}]})
    assert "faults[0].to" in str(e)
    raises(Invalid, SIM_SCHEMA.check, {"faults": [{"kind": "gremlins", "from": 0}]})
    raises(Invalid, SIM_SCHEMA.check, {"speed": 0})
    raises(Invalid, SIM_SCHEMA.check, {"ticks_offset": TICKS_MASK + 1})
    raises(Invalid, SimWorld, {"cloudiness": 2})
    assert SimWorld({"seed": 3}).cfg["lat"] == -0.95


def test_load_sim_from_data_dir():
    d = _tmpdir()
    try:
        assert load_sim(d)["seed"] == 1  # no sim.json: defaults
        FileStore(d).write("sim.json", b'{"seed": 9, "speed": 720}')
        s = load_sim(d)
        assert (s["seed"], s["speed"]) == (9, 720.0)
        FileStore(d).write("sim.json", b'{"seed": ')
        raises(Invalid, load_sim, d)
    finally:
        _rmtree(d)


def test_board_seam():
    d = _tmpdir()
    ft = FakeTime()
    try:
        b = make_board({"node": {}}, d, {"seed": 5}, "wdt", ft.real_ms, ft.mono_ms)
        for attr, methods in (("lamp", ("set_output", "set_relay")), ("light", ("read_lux",)), ("meter", ("read",)),
                              ("clock", ("ticks_ms", "now", "set_now")), ("store", ("read", "write", "remove")),
                              ("wdt", ("start", "feed")), ("net", ("up", "connect", "rssi")),
                              ("system", ("reset_cause", "reset", "unique_id", "mem_free"))):
            for m in methods:
                assert callable(getattr(getattr(b, attr), m)), (attr, m)
        assert b.system.reset_cause() == "wdt"
        uid = b.system.unique_id()
        assert len(uid) == 12 and all(c in "0123456789abcdef" for c in uid)
        assert make_board(None, d, {"seed": 6}, "power_on", ft.real_ms, ft.mono_ms).system.unique_id() != uid
        assert isinstance(b.system.mem_free(), int)
        b.lamp.set_output(1.7)
        assert b.lamp.duty == 1.0
        b.lamp.set_output(-1)
        assert b.lamp.duty == 0.0
        raises(ValueError, b.lamp.set_output, float("nan"))
        b.store.write("state.json", b"{}")
        b.clock.set_now(DEFAULT_START_T2K)  # the sim's own clock file is not a node write
        assert b.store.writes == 1 and b.store.read("state.json") == b"{}"
        lux = b.light.read_lux()
        assert isinstance(lux, float) and lux >= 0.0
        assert b.meter.read()[1] == 0.0  # relay open
        b.lamp.set_output(1.0)
        b.lamp.set_relay(True)
        assert approx(b.meter.true_watts(), 60.0, 1e-9)
        assert b.lamp.switches == 1
    finally:
        _rmtree(d)
