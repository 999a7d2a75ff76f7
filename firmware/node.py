"""The lamp post: wires board, control, metering, faults, persistence and the MQTT link into one event loop.

The loop (`run`) waits on the MQTT socket with a timeout to the next due task, so the node sleeps when there is
nothing to do and answers a command the moment it arrives. Each control step reads the sensors, decides the level,
drives the lamp, meters, checks faults and feeds the watchdog — whether or not the network is there. The lamp is
decided first at boot, before any network.
"""

import json

from firmware import astro, bootguard, startup
from firmware import config as configmod
from firmware.clo import clo_level
from firmware.commands import Inbox, Rejected, error_reply
from firmware.compat import const, mem_free, print_exception, ticks_add, ticks_diff
from firmware.control import Controller
from firmware.faults import FaultMonitor
from firmware.lampout import LampOutput
from firmware.logring import LogRing
from firmware.metering import Meter
from firmware.mqtt_link import Link
from firmware.ota import OtaAgent
from firmware.persist import StateFile
from firmware.schema import Invalid
from firmware.signing import hmac_sha256
from firmware.timebase import T2K_UNIX_OFFSET, TimeKeeper, days_from_civil
from firmware.version import VERSION

BUILD_FLOOR_T2K = days_from_civil(2026, 1, 1) * 86400  # no real clock can read earlier than this firmware
_FADE_STEP_MS = const(50)
# Calibration: hold each level this long (plus the lamp's warm-up) while FaultMonitor learns its healthy current.
CALIBRATION_LEVELS = (10, 20, 40, 60, 80, 100)
_CALIBRATION_HOLD_S = const(60)
_IDENTIFY_HALF_MS = const(500)


def _unix(t2k):
    return t2k + T2K_UNIX_OFFSET


def safe_config(cfg):
    """Safe mode: photocell only, full level at night, no optional features; MQTT kept for diagnosis."""
    safe = dict(cfg)
    safe["control"] = dict(cfg["control"], mode="photocell", default_level=100)
    safe["programs"] = {"default": [{"at": "sunset", "offset_min": 0, "level": 100}]}
    safe["calendar"] = []
    safe["clo"] = dict(cfg["clo"], enabled=False)
    return safe


class Node:
    def __init__(self, board, cfg, store, rand, cfg_source="config", problems=(), safe_mode=False, why_safe=""):
        self.board = board
        self.store = store
        self.rand = rand
        self.cfg_source = cfg_source
        self.safe_mode = safe_mode
        self.why_safe = why_safe
        self.log = LogRing(cfg["system"]["log_lines"])
        self.state_file = StateFile(store)
        saved = self.state_file.load()
        self.cfg = cfg
        self.lamp = LampOutput(cfg["lamp"])
        self._apply_control_config(safe_config(cfg) if safe_mode else cfg)
        node_id = cfg["node"]["id"] or ("n-" + board.system.unique_id())
        self.node_id = node_id
        base = cfg["mqtt"]["prefix"] + "/" + node_id + "/"
        self.t_status = (base + "status").encode()
        self.t_state = (base + "state").encode()
        self.t_tele = (base + "tele").encode()
        self.t_event = (base + "event").encode()
        self.t_cmd = (base + "cmd").encode()
        self.t_reply = (base + "reply").encode()
        self.t_ota = (base + "ota").encode()
        # Our own status too: when the broker publishes a stale Last Will of our previous connection after our new
        # birth (a reconnect that beat the broker's cleanup of a half-open session), we see ourselves "offline"
        # while connected and answer with a fresh birth.
        subs = [self.t_cmd, self.t_ota, self.t_status, (cfg["mqtt"]["prefix"] + "/all/cmd").encode()]
        for g in cfg["node"]["groups"]:
            subs.append((cfg["mqtt"]["prefix"] + "/group/" + g + "/cmd").encode())
        self.subscriptions = subs
        self.time = TimeKeeper(BUILD_FLOOR_T2K, cfg["time"]["max_jump_s"])
        self.meter = Meter(cfg["metering"], saved.get("meter"))
        self.faults = FaultMonitor(cfg["faults"], cfg["lamp"], saved.get("faults"))
        self.override = _valid_override(saved.get("override"))
        self._saved_valid_time = saved.get("time") if isinstance(saved.get("time"), int) else None
        self.inbox = Inbox(cfg["mqtt"]["max_payload"])
        self.ota = OtaAgent(store.root, cfg["ota"], cfg["ota"]["update_key"], hmac_sha256,
                            lambda text: self.log.add(self.board.clock.now(), text))
        self.link = None
        self._early_events = []  # events of the boot decision, before the link exists
        self.seq = 0
        self.level = 0
        self.reason = "boot"
        self.lux = None
        self.reading = None
        self._published = None  # the last state published (for report-by-exception)
        self._tele_t = None
        self._tele_w = None
        self._next_control = 0
        self._identify_until = None
        self._lit_since = None  # ticks when the relay last closed (warm-up for the fault checks)
        self._driven_relay = False  # the relay as the board drives it now
        self._logged_error = ""
        self._calibration = None  # [index into CALIBRATION_LEVELS, t2k the level started] while calibrating
        self.ntp = None
        self._boot_ms = self.board.clock.ticks_ms()
        self._healthy_done = False
        self._pending_reset = None
        self.trial = False  # set by startup when this config is on trial after a remote change
        for p in problems:
            self.log.add(0, "config: " + p)
        self.problems = list(problems)
        if self.state_file.error and saved == {}:
            self.log.add(0, "state: " + self.state_file.error)

    def _apply_control_config(self, cfg):
        """The config the lamp decisions follow: the node's own, or its safe-mode reduction."""
        self.controller = Controller(cfg)
        self.control_cfg = cfg

    # --- boot ------------------------------------------------------------------------------------------------------

    def start(self, poller):
        """Decide the lamp from local knowledge first, then bring up the network (the watchdog already runs)."""
        b = self.board
        now = b.clock.now()
        cause = b.system.reset_cause()
        valid, why = self.time.boot(now, self._saved_valid_time)
        self.log.add(now, "boot: fw %s, reset %s, time %s (%s), config %s%s" % (
            VERSION, cause, "valid" if valid else "not valid", why, self.cfg_source,
            ", SAFE MODE: " + self.why_safe if self.safe_mode else ""))
        if cause in ("power_on", "brownout"):
            self.meter.note_supply_loss()
        self.faults.note_reset(cause)  # a supply loss is reported with the first control step's events
        if self.override is not None and self.override["until"] is not None and not valid:
            # An override with an end time cannot be judged without a clock: the program (or photocell) decides.
            self.log.add(now, "override dropped: no valid time to judge its expiry")
            self.override = None
        t = self.board.clock.ticks_ms()
        self._next_control = t  # ticks may start anywhere in their 2^30 range: schedule from now, not from 0
        self.control_step(t)
        self.boot_decision_ms = ticks_diff(self.board.clock.ticks_ms(), self._boot_ms)
        mq = self.cfg["mqtt"]
        will = json.dumps({"online": False}).encode()
        self.link = Link(mq, self.node_id, self.t_status, will, self.subscriptions, self, self.rand, poller,
                         ssl_params=self._ssl_params())
        hosts = self.cfg["time"]["ntp_hosts"]
        if hosts:
            from firmware.timesync import NtpClient

            self.ntp = NtpClient(hosts, self.cfg["time"]["ntp_interval_s"], poller, self.board.clock.ticks_ms())
        self.inbox.verifier = self._verifier()

    def _ssl_params(self):
        tls = self.cfg["mqtt"]["tls"]
        if tls is None:
            return None
        from firmware.tls import client_context  # only nodes configured for TLS load the TLS code

        host = tls["server_hostname"] or self.cfg["mqtt"]["brokers"][0]["host"]
        return {"context": client_context(tls), "server_hostname": host}

    def _verifier(self):
        sec = self.cfg["security"]
        if not sec["require_signed"]:
            return None
        from firmware.signing import Verifier

        return Verifier(sec["node_key"], sec["group_key"], sec["max_age_s"], self.node_id, self.cfg["node"]["groups"])

    # --- the loop --------------------------------------------------------------------------------------------------

    def run(self, poller):
        self.start(poller)
        while True:
            now = self.board.clock.ticks_ms()
            self.tick(now)
            self.link.wait(self.next_due_ms(self.board.clock.ticks_ms()))

    def next_due_ms(self, now_ms):
        due = ticks_diff(self._next_control, now_ms)
        if self.ntp is not None:
            due = min(due, self.ntp.next_due_ms(now_ms))
        if self.lamp.fading() or self._identify_until is not None:
            due = min(due, _FADE_STEP_MS)
        return max(0, min(due, self.link.next_due_ms(now_ms)))

    def tick(self, now_ms):
        if self._pending_reset is not None:
            self._do_reset()
        if self.trial and not self.link.connects and \
                ticks_diff(now_ms, self._boot_ms) >= self.cfg["system"]["confirm_config_s"] * 1000:
            why = "new config did not reach the broker within %d s" % self.cfg["system"]["confirm_config_s"]
            startup.roll_back_config(self.store, why)
            self.log.add(self.board.clock.now(), why + ": rolled back")
            self.trial = False
            self._pending_reset = "rollback"
        if ticks_diff(now_ms, self._next_control) >= 0:
            self._next_control = ticks_add(now_ms, self.cfg["system"]["control_ms"])
            self.control_step(now_ms)
        elif self.lamp.fading() or self._identify_until is not None:
            self._drive(now_ms)
        net_up = self.board.net.up()
        if not net_up:
            self.board.net.connect()  # non-blocking: the driver paces its own attempts (backoff)
        self.link.service(now_ms)
        if self.ntp is not None:
            self._sync_time(now_ms, net_up)
        if self.link.last_error != self._logged_error:
            # Report locally why the broker cannot be reached (a refused certificate, bad credentials...), once per
            # change of reason: the serial console is the only witness while the network is what is broken.
            self._logged_error = self.link.last_error
            if self._logged_error:
                self.log.add(self.board.clock.now(), "mqtt: " + self._logged_error)
        if self.link.connected:
            now = self.board.clock.now()
            self._report(now)
            ev = self.ota.pending_report()
            if ev is not None:
                self._event(now, ev)

    def _sync_time(self, now_ms, net_up):
        t, err = self.ntp.service(now_ms, net_up, self.time.valid)
        now = self.board.clock.now()
        if err is not None:
            self.log.add(now, err)
        if t is None:
            return
        accepted, why, delta = self.time.offer("ntp", t, now)
        if not accepted:
            self.log.add(now, "ntp time refused: " + why)
            return
        self._set_clock(now, delta, "ntp", why)

    def _set_clock(self, now, delta, source, why):
        """Move the RTC by delta (an accepted time): overrides keep their length, the new time is saved, and the
        lamp is decided again at once (a node that just learned the time switches from photocell to program)."""
        self.board.clock.set_now(now + delta)
        if self.override is not None and self.override["until"] is not None:
            self.override["until"] += delta  # a clock correction must not lengthen or cut an override
        if delta > 2 or delta < -2:
            self.log.add(now + delta, "time set by %s (%s, %+d s)" % (source, why, delta))
        self.state_file.dirty = True
        self.control_step(self.board.clock.ticks_ms())

    def control_step(self, now_ms):
        """One control decision, driven to the lamp; then metering, faults, persistence, watchdog."""
        b = self.board
        now = b.clock.now()
        tv = self.time.valid
        self.lux = b.light.read_lux()
        ov = self.override
        if ov is not None and ov["until"] is not None and tv and now >= ov["until"]:
            self.override = None
            ov = None
            self.state_file.dirty = True
            self._event(now, {"kind": "override_end"})
        level, reason = self.controller.decide(now, tv, self.lux, ov)
        clo = self.control_cfg["clo"]
        if clo["enabled"] and level > 0 and reason != "override":
            level = clo_level(level, self.meter.counters()["burn_h"], clo)
        if self._calibration is not None:
            cal_level = self._calibration_level(now)
            if cal_level is not None:  # None: calibration just ended, the decision above stands
                level, reason = cal_level, "calibrate"
        self.level = level
        self.reason = reason
        self.lamp.set_target(level, now_ms)
        self._drive(now_ms)
        self.reading = b.meter.read()
        lit = self._driven_relay  # what the board drives now (identify blinks it), not what the program asked
        # The lamp model's power stands in for the meter where it has no reading (counted apart as estimated).
        self.meter.update(now, self.reading, lit, self.lamp.expected_w() if lit else 0.0)
        if self._identify_until is None:
            # While identify blinks the lamp nothing electrical can be judged: the checks hold until it ends.
            elev = astro.sun_elevation(now, self.cfg["site"]["lat"], self.cfg["site"]["lon"]) if tv else None
            on_s = ticks_diff(now_ms, self._lit_since) // 1000 if lit and self._lit_since is not None else None
            for ev in self.faults.update(now, {
                "level": self.lamp.level, "relay": lit, "on_s": on_s,
                "reading": self.reading, "lux": self.lux, "sun": elev,
            }):
                self._event_fault(now, ev)
        self._persist(now)
        if not self._healthy_done and ticks_diff(now_ms, self._boot_ms) >= self.cfg["system"]["healthy_after_s"] * 1000:
            self._healthy_done = True
            bootguard.healthy(self.store)
        uptime_s = ticks_diff(now_ms, self._boot_ms) // 1000
        if self.ota.confirm_if_due(self.link is not None and self.link.connected, uptime_s) and self.ota.reset_wanted:
            self._pending_reset = "ota"
        b.wdt.feed()  # only a control step that got this far keeps the watchdog quiet

    def _calibration_level(self, now):
        """The level calibration drives now, or None once it has ended (the table is then stored)."""
        cal = self._calibration
        if now - cal[1] >= _CALIBRATION_HOLD_S + self.cfg["lamp"]["warmup_s"] or now < cal[1]:
            cal[0] += 1
            cal[1] = now
        if cal[0] < len(CALIBRATION_LEVELS):
            return CALIBRATION_LEVELS[cal[0]]
        self._calibration = None
        table = self.faults.calibrate_stop(now)
        if len(table) >= 2:
            try:
                self._change_config({"faults": {"nominal_a": table}}, now)
                self._event(now, {"kind": "calibrated", "nominal_a": table})
            except (Invalid, OSError) as e:
                self._event(now, {"kind": "calibration_failed", "reason": str(e)})
        else:
            self._event(now, {"kind": "calibration_failed", "reason": "no stable current readings"})
        return None

    def _drive(self, now_ms):
        duty, relay = self.lamp.step(now_ms)
        if self._identify_until is not None:
            if ticks_diff(self._identify_until, now_ms) <= 0:
                self._identify_until = None
            else:
                # Blink between full and off: visible from the street in daylight.
                on = (ticks_diff(self._identify_until, now_ms) // _IDENTIFY_HALF_MS) & 1
                duty, relay = (1.0, True) if on else (0.0, False)
        if relay and self._lit_since is None:
            self._lit_since = now_ms
        elif not relay:
            self._lit_since = None
        self._driven_relay = relay
        self.board.lamp.set_relay(relay)
        self.board.lamp.set_output(duty)

    # --- persistence -----------------------------------------------------------------------------------------------

    def _persist(self, now, force=False):
        periodic = self.meter.due_save(now)
        if force or self.state_file.due(now, periodic):
            doc = {"meter": self.meter.snapshot(), "faults": self.faults.snapshot(), "override": self.override,
                   "time": now if self.time.valid else self._saved_valid_time}
            try:
                self.state_file.save(now, doc)
                self.meter.saved(now)
            except OSError as e:
                self.log.add(now, "state save failed: %s" % e)

    # --- reporting -------------------------------------------------------------------------------------------------

    def state_doc(self, now):
        ov = self.override
        c = self.meter.counters()
        return {
            "level": self.level, "reason": self.reason,
            "mode": "safe" if self.safe_mode else self.control_cfg["control"]["mode"],
            "override": None if ov is None else {
                "level": ov["level"], "until": None if ov["until"] is None else _unix(ov["until"])},
            "faults": self.faults.active(), "time_valid": self.time.valid, "time_source": self.time.source,
            "energy_wh": c["energy_wh"], "burn_h": c["burn_h"], "switch_ons": c["switch_ons"],
            "fw": VERSION, "config": self.cfg_source, "safe_mode": self.safe_mode,
            "t": _unix(now) if self.time.valid else None,
        }

    def tele_doc(self, now):
        r = self.reading
        c = self.meter.counters()
        link = self.link
        return {
            "t": _unix(now) if self.time.valid else None, "level": round(self.lamp.level, 1),
            "lux": None if self.lux is None else round(self.lux, 1),
            "v": None if r is None else round(r[0], 1), "a": None if r is None else round(r[1], 3),
            "w": None if r is None else round(r[2], 1), "pf": None if r is None else round(r[3], 2),
            "energy_wh": c["energy_wh"], "burn_h": c["burn_h"], "rssi": self.board.net.rssi(),
            "heap_free": mem_free(), "uptime_s": ticks_diff(self.board.clock.ticks_ms(), self._boot_ms) // 1000,
            "link": {"connects": link.connects, "drops": link.drops, "queued": link.queued(),
                     "dropped": link.dropped_events},
        }

    def _state_key(self):
        ov = self.override
        return (self.level, self.reason, None if ov is None else (ov["level"], ov["until"]),
                tuple(self.faults.active()), self.time.valid, self.safe_mode)

    def _report(self, now):
        key = self._state_key()
        if key != self._published:
            if self.link.publish(self.t_state, json.dumps(self.state_doc(now)).encode(), True):
                self._published = key
        period = self.cfg["report"]["telemetry_s"]
        w = None if self.reading is None else self.reading[2]
        due = self._tele_t is None or now - self._tele_t >= period or now < self._tele_t
        if not due and w is not None and self._tele_w is not None and now - self._tele_t >= \
                self.cfg["report"]["min_interval_s"]:
            band = self.cfg["lamp"]["nominal_w"] * self.cfg["report"]["deadband_w_pct"] / 100
            due = abs(w - self._tele_w) > band
        if due and self.link.publish(self.t_tele, json.dumps(self.tele_doc(now)).encode()):
            self._tele_t = now
            self._tele_w = w

    def _event(self, now, doc):
        self.seq += 1
        doc["seq"] = self.seq
        doc["t"] = _unix(now) if self.time.valid else None
        self.link_event(json.dumps(doc).encode())

    def link_event(self, payload):
        if self.link is None:  # events raised during the boot decision wait for the link to exist
            self._early_events.append(payload)
        else:
            self.link.send_event(self.t_event, payload)

    def _event_fault(self, now, ev):
        name, active, detail = ev
        self.log.add(now, "alarm %s %s" % (name, "raised" if active else "cleared"))
        self.state_file.dirty = True
        self._event(now, {"kind": "alarm", "name": name, "active": active, "detail": detail})

    # --- MQTT receiver ---------------------------------------------------------------------------------------------

    def _publish_birth(self):
        birth = {"online": True, "fw": VERSION, "id": self.node_id, "groups": self.cfg["node"]["groups"],
                 "safe_mode": self.safe_mode, "boot_decision_ms": self.boot_decision_ms}
        self.link.publish(self.t_status, json.dumps(birth).encode(), True)

    def on_connect(self):
        now = self.board.clock.now()
        self._publish_birth()
        self._published = None  # re-publish the retained state after every (re)connect
        for payload in self._early_events:
            self.link.send_event(self.t_event, payload)
        self._early_events = []
        if self.problems:
            self._event(now, {"kind": "config_error", "problems": self.problems})
            self.problems = []
        if self.link.connects == 1:
            why = startup.take_rollback_notice(self.store)
            if why is not None:
                self._event(now, {"kind": "config_rollback", "reason": why})
        self.log.add(now, "mqtt connected (%d)" % self.link.connects)
        if self.trial:
            startup.confirm_config(self.store)
            self.trial = False
            self.log.add(now, "config confirmed: it reached the broker")
        elif self.cfg_source == "config" and self.link.connects == 1 and \
                self.store.read(configmod.GOOD_FILE) is None:
            startup.confirm_config(self.store)

    def on_oversize(self, topic, size):
        now = self.board.clock.now()
        self.log.add(now, "discarded %d-byte message" % size)
        if topic == self.t_cmd:
            limit = self.cfg["mqtt"]["max_payload"]
            self._reply(error_reply(None, None, "payload of %d bytes exceeds %d" % (size, limit)))

    def on_message(self, topic, msg, retained):
        if topic == self.t_status:
            if b'"online": false' in msg or b'"online":false' in msg:
                self._publish_birth()
            return
        if topic == self.t_ota:  # update chunks: binary, acknowledged on the reply topic so the sender paces itself
            r = self.ota.chunk(msg)
            if r is not None:
                self._reply(r)
            return
        now = self.board.clock.now()
        route = topic != self.t_cmd
        if self.inbox.verifier is not None and route:
            # The signature covers the exact destination: a command signed for one group cannot be replayed to
            # another. (firmware.signing is loaded only on nodes that require signed commands.)
            from firmware.signing import target_for_topic

            route = target_for_topic(topic, self.cfg["mqtt"]["prefix"])
        try:
            cmd = self.inbox.check(msg, retained, now, self.time.valid, self.cfg["security"]["max_age_s"], route)
        except Rejected as r:
            self._reply(r.reply)
            return
        previous = self.inbox.previous_reply(cmd["id"])
        if previous is not None:
            self.link.publish(self.t_reply, previous)
            return
        try:
            reply = self.execute(cmd, now)
        except Invalid as e:
            reply = error_reply(cmd["id"], cmd["cmd"], str(e))
        except (OSError, ValueError, KeyError, TypeError) as e:  # a bug must not take the node down: report it
            print_exception(e)
            reply = error_reply(cmd["id"], cmd["cmd"], "internal error: %s" % e.__class__.__name__)
        data = self._reply(reply)
        if cmd["cmd"] != "get":
            # Only commands that act need "answered again, not run again". A `get` is harmless to repeat, and its
            # reply (a config is several KB) must not be pinned in RAM 24 times over on a 100 KB heap.
            self.inbox.remember(cmd["id"], data)

    def _reply(self, reply):
        data = json.dumps(reply).encode()
        self.link.publish(self.t_reply, data)
        return data

    # --- commands --------------------------------------------------------------------------------------------------

    def execute(self, cmd, now):
        kind = cmd["cmd"]
        ok = {"id": cmd["id"], "ok": True, "cmd": kind}
        if kind == "set":
            d = cmd["duration_s"]
            self.override = {"level": cmd["level"], "until": None if d is None else now + d}
            self.state_file.dirty = True
            self.control_step(self.board.clock.ticks_ms())  # act now: the reply tells the new level
            ok["level"] = self.level
            ok["until"] = None if d is None else _unix(now + d)
        elif kind == "clear":
            self.override = None
            self.state_file.dirty = True
            self.control_step(self.board.clock.ticks_ms())
            ok["level"] = self.level
            ok["reason"] = self.reason
        elif kind == "get":
            what = cmd["what"]
            if what == "state":
                ok["state"] = self.state_doc(now)
            elif what == "config":
                ok["config"] = configmod.redact(self.cfg)
            elif what == "log":
                ok["log"] = self.log.lines()
            else:
                ok["counters"] = self.meter.counters()
                link = self.link
                ok["link"] = {"connects": link.connects, "drops": link.drops, "failures": link.failures,
                              "oversize": link.oversize, "rejected": self.inbox.rejected,
                              "last_error": link.last_error, "tx_bytes": link.tx_bytes, "rx_bytes": link.rx_bytes}
                ok["events"] = {"produced": self.seq, "acked": link.acked_events, "queued": link.queued(),
                                "dropped": link.dropped_events}
                ok["flash"] = {"state_writes_today": self.state_file.writes_today, "store_writes": self.store.writes}
        elif kind == "time":
            accepted, why, delta = self.time.offer("cmd", cmd["utc"] - T2K_UNIX_OFFSET, now)
            if not accepted:
                return error_reply(cmd["id"], kind, "time refused: " + why)
            self._set_clock(now, delta, "command", why)
            ok["delta_s"] = delta
        elif kind == "identify":
            self._identify_until = ticks_add(self.board.clock.ticks_ms(), cmd["seconds"] * 1000)
            ok["seconds"] = cmd["seconds"]
        elif kind == "reboot":
            self._pending_reset = "safe" if cmd["safe"] else "reboot"
        elif kind == "program":
            patch = {"programs": cmd["programs"]}
            if cmd["calendar"] is not None:
                patch["calendar"] = cmd["calendar"]
            self._change_config(patch, now)
        elif kind == "config":
            self._change_config(cmd["set"], now)
            ok["restart"] = self._pending_reset is not None
        elif kind.startswith("ota_"):
            if kind == "ota_begin":
                r = self.ota.begin(cmd["manifest"], cmd["manifest_sig"], cmd["force"])
            elif kind == "ota_status":
                r = self.ota.status()
            elif kind == "ota_commit":
                r = self.ota.commit()
                if self.ota.reset_wanted:
                    self._pending_reset = "ota"
            else:
                r = self.ota.abort()
            r["id"] = cmd["id"]
            return r
        elif kind == "calibrate":
            if self._calibration is not None:
                return error_reply(cmd["id"], kind, "calibration already running")
            self.faults.calibrate_start(now)
            self._calibration = [0, now]
            ok["levels"] = list(CALIBRATION_LEVELS)
            ok["seconds"] = len(CALIBRATION_LEVELS) * (_CALIBRATION_HOLD_S + self.cfg["lamp"]["warmup_s"])
        else:
            return error_reply(cmd["id"], kind, "not supported by this firmware")
        return ok

    def _change_config(self, patch, now):
        new = configmod.validate(configmod.merge(self.cfg, patch))  # raises Invalid: nothing changed
        data = configmod.dumps(new)
        old = self.store.read(configmod.CONFIG_FILE)
        if old is not None:
            self.store.write(configmod.GOOD_FILE, old)
        self.store.write(configmod.CONFIG_FILE, data)
        live = ("programs", "calendar", "control", "photocell", "clo", "report", "site", "lamp", "faults",
                "metering", "time")
        if all(k in live for k in patch):
            self.cfg = new
            self._apply_control_config(safe_config(new) if self.safe_mode else new)
            self.lamp = LampOutput(new["lamp"], self.lamp) if "lamp" in patch else self.lamp
            if "faults" in patch or "lamp" in patch:  # new thresholds; active faults carried over
                self.faults = FaultMonitor(new["faults"], new["lamp"], self.faults.snapshot())
            if "metering" in patch:
                self.meter = Meter(new["metering"], self.meter.snapshot())
            self.log.add(now, "config changed live: " + ",".join(sorted(patch)))
        else:
            # Identity, broker, hardware or security changes take a restart; the boot after it must reach the
            # broker with the new config or config.good.json is restored (see firmware/startup.py).
            self.log.add(now, "config changed, restarting: " + ",".join(sorted(patch)))
            self._pending_reset = "config"

    def _do_reset(self):
        kind = self._pending_reset
        self._pending_reset = None
        now = self.board.clock.now()
        self._persist(now, force=True)
        bootguard.request(self.store, "safe" if kind == "safe" else "reboot")
        if kind == "config":
            startup.mark_config_trial(self.store)
        self.log.add(now, "reset requested (%s)" % kind)
        self.link.publish(self.t_status, json.dumps({"online": False, "reason": kind}).encode(), True)
        self.link.close()
        self.board.system.reset()


def _valid_override(ov):
    if not isinstance(ov, dict):
        return None
    level = ov.get("level")
    until = ov.get("until")
    if isinstance(level, int) and 0 <= level <= 100 and (until is None or isinstance(until, int)):
        return {"level": level, "until": until}
    return None
