"""The lamp post: wires board, control, metering, faults, persistence and the MQTT link into one event loop.

The loop (`run`) waits on the MQTT socket with a timeout to the next due task, so the node sleeps when there is
nothing to do and answers a command the moment it arrives. Each control step reads the sensors, decides the level,
drives the lamp, meters, checks faults and feeds the watchdog — whether or not the network is there. The lamp is
decided first at boot, before any network.
"""

import gc
import json

from firmware import astro, bootguard, cold, configtrial
from firmware import config as configmod
from firmware.clo import clo_level
from firmware.commands import OUT_OF_MEMORY, Inbox, Rejected, error_reply
from firmware.compat import const, mem_free, print_exception, ticks_add, ticks_diff
from firmware.control import Controller
from firmware.faults import FaultMonitor
from firmware.lampout import LampOutput
from firmware.logring import LogRing
from firmware.metering import Meter
from firmware.mqtt_link import Link
from firmware.otadoc import agent_needed
from firmware.persist import BUDGET_SPENT, StateFile
from firmware.schema import Invalid
from firmware.timebase import T2K_UNIX_OFFSET, TimeKeeper, days_from_civil
from firmware.version import VERSION

BUILD_FLOOR_T2K = days_from_civil(2026, 1, 1) * 86400  # no real clock can read earlier than this firmware
_FADE_STEP_MS = const(50)
_IDENTIFY_HALF_MS = const(500)
# The module that runs each command (firmware/cmd_<name>.py), loaded for the command and dropped after
# (firmware/cold.py): the code of rare commands takes no RAM while the node just runs its lamp.
_RUNNERS = {"set": "override", "clear": "override", "get": "get", "program": "config", "config": "config",
            "time": "device", "identify": "device", "reboot": "device", "calibrate": "calibrate"}


def _unix(t2k):
    return t2k + T2K_UNIX_OFFSET


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
        self._apply_control_config(configmod.safe_mode(cfg) if safe_mode else cfg)
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
        self._saved_sig_floor = saved.get("sig_floor")  # replay floor of signed commands (firmware/signing.py)
        self.inbox = Inbox(cfg["mqtt"]["max_payload"])
        self._ota = None  # the update agent (firmware/ota.py) while it has something to do: ota_agent()
        if agent_needed(store.root):
            self.ota_agent()  # a version on trial, or an outcome to report
        self.link = None
        self.link_buffers = None  # the MQTT client's buffers, when startup made them early (umqtt_hardened.Buffers)
        self._early_events = []  # events of the boot decision, before the link exists
        self.seq = 0
        self.level = 0
        self.reason = "boot"
        self._decided_t = None  # the clock of the control step that decided level and reason: the state's "t"
        self.lux = None
        self.reading = None
        self._published = None  # the last state published (for report-by-exception)
        self._tele_t = None
        self._tele_w = None
        self._next_control = 0
        self.identify_until = None
        self._lit_since = None  # ticks when the relay last closed (warm-up for the fault checks)
        self._driven_relay = False  # the relay as the board drives it now
        self._logged_error = ""
        self.calibration = None  # a firmware.cmd_calibrate.Calibration while one runs
        self.ntp = None
        self._boot_ms = self.board.clock.ticks_ms()
        self._healthy_done = False
        self.pending_reset = None
        self.trial = False  # set by startup when this config is on trial after a remote change
        self.memory_refusals = 0  # commands refused because the heap could not hold them
        self.memory_errors = 0  # loop iterations cut short by a MemoryError
        self.heap_low = -1  # lowest free heap after a command, collected (for `get counters`); set by start()
        self._handling = None  # (id, cmd) of the command being run, for its out-of-memory reply
        self._applied = False
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
        gc.collect()
        self.heap_low = mem_free()  # the node is built: from here on only commands can push it lower
        mq = self.cfg["mqtt"]
        will = json.dumps({"online": False}).encode()
        self.link = Link(mq, self.node_id, self.t_status, will, self.subscriptions, self, self.rand, poller,
                         ssl_params=self._ssl_params())
        self.link.buffers = self.link_buffers  # made by startup before anything else (None: made at first connect)
        hosts = self.cfg["time"]["ntp_hosts"]
        if hosts:
            from firmware.timesync import NtpClient

            self.ntp = NtpClient(hosts, self.cfg["time"]["ntp_interval_s"], poller, self.board.clock.ticks_ms())
        self.inbox.use_verifier(self._verifier())

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

        return Verifier(sec["node_key"], sec["group_key"], sec["max_age_s"], self.node_id, self.cfg["node"]["groups"],
                        self._saved_sig_floor)

    # --- the loop --------------------------------------------------------------------------------------------------

    def run(self, poller):
        self.start(poller)
        while True:
            try:
                self.tick(self.board.clock.ticks_ms())
                self.link.wait(self.next_due_ms(self.board.clock.ticks_ms()))
            except MemoryError:
                # Refuse, never reset: whatever needed the memory is dropped and the next step drives the lamp
                # again. A loop that cannot get through a control step at all stops feeding the watchdog, and
                # the reset that follows is counted by bootguard like any crash.
                gc.collect()
                self.memory_errors += 1

    def next_due_ms(self, now_ms):
        due = ticks_diff(self._next_control, now_ms)
        if self.ntp is not None:
            due = min(due, self.ntp.next_due_ms(now_ms))
        if self.lamp.fading() or self.identify_until is not None:
            due = min(due, _FADE_STEP_MS)
        return max(0, min(due, self.link.next_due_ms(now_ms)))

    def tick(self, now_ms):
        if self.pending_reset is not None:
            self._do_reset()
        if self.trial and not self.link.connects and \
                ticks_diff(now_ms, self._boot_ms) >= self.cfg["system"]["confirm_config_s"] * 1000:
            why = "new config did not reach the broker within %d s" % self.cfg["system"]["confirm_config_s"]
            configtrial.roll_back(self.store, why)
            self.log.add(self.board.clock.now(), why + ": rolled back")
            self.trial = False
            self.pending_reset = "rollback"
        if ticks_diff(now_ms, self._next_control) >= 0:
            self._next_control = ticks_add(now_ms, self.cfg["system"]["control_ms"])
            self.control_step(now_ms)
        elif self.lamp.fading() or self.identify_until is not None:
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
            if self._ota is not None:
                ev = self._ota.pending_report()
                if ev is not None:
                    self.event(now, ev)
                self.release_ota()

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
        self.set_clock(now, delta, "ntp", why)

    def set_clock(self, now, delta, source, why):
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
            self.event(now, {"kind": "override_end"})
        # A light sensor the fault monitor has flagged must not decide (a stuck reading would keep a street dark).
        level, reason = self.controller.decide(now, tv, self.lux, ov, self.faults.light_fault())
        clo = self.control_cfg["clo"]
        if clo["enabled"] and level > 0 and reason != "override":
            level = clo_level(level, self.meter.counters()["burn_h"], clo)
        if self.calibration is not None:
            cal_level = self.calibration.level(self, now)
            if cal_level is not None:  # None: calibration just ended, the decision above stands
                level, reason = cal_level, "calibrate"
        self.level = level
        self.reason = reason
        self._decided_t = now
        self.lamp.set_target(level, now_ms)
        self._drive(now_ms)
        self.reading = b.meter.read()
        lit = self._driven_relay  # what the board drives now (identify blinks it), not what the program asked
        # The lamp model's power stands in for the meter where it has no reading (counted apart as estimated).
        self.meter.update(now, self.reading, lit, self.lamp.expected_w() if lit else 0.0)
        if self.identify_until is None:
            # While identify blinks the lamp nothing electrical can be judged: the checks hold until it ends.
            elev = astro.sun_elevation(now, self.cfg["site"]["lat"], self.cfg["site"]["lon"]) if tv else None
            on_s = ticks_diff(now_ms, self._lit_since) // 1000 if lit and self._lit_since is not None else None
            for ev in self.faults.update(now, {
                "level": self.lamp.level, "relay": lit, "on_s": on_s,
                "reading": self.reading, "lux": self.lux, "sun": elev, "override": reason == "override",
            }):
                self._event_fault(now, ev)
        self._persist(now)
        if not self._healthy_done and ticks_diff(now_ms, self._boot_ms) >= self.cfg["system"]["healthy_after_s"] * 1000:
            self._healthy_done = True
            bootguard.healthy(self.store)
        uptime_s = ticks_diff(now_ms, self._boot_ms) // 1000
        agent = self._ota
        if agent is not None and agent.confirm_if_due(self.link is not None and self.link.connected, uptime_s) and \
                agent.reset_wanted:
            self.pending_reset = "ota"
        b.wdt.feed()  # only a control step that got this far keeps the watchdog quiet

    def ota_agent(self):
        """The update agent, loaded when first needed. It is cold (firmware/otadoc.py says why): an update command
        or chunk, a trial or an outcome to report loads it, and release_ota() lets it go once it is idle."""
        if self._ota is None:
            OtaAgent = cold.load("firmware.ota").OtaAgent
            cfg = self.cfg["ota"]
            self._ota = OtaAgent(self.store.root, cfg, cfg["update_key"], _manifest_hmac,
                                 lambda text: self.log.add(self.board.clock.now(), text))
        return self._ota

    def release_ota(self):
        """Let the agent and its code go when it has nothing left to do (no transfer, trial or report)."""
        if self._ota is not None and self._ota.idle():
            self._ota = None
            cold.drop("firmware.ota")

    def _note_heap(self):
        """After a command: collect (a quiet point; commands are rare) and keep the lowest free heap seen."""
        gc.collect()
        free = mem_free()
        if free < self.heap_low or self.heap_low < 0:
            self.heap_low = free

    def _drive(self, now_ms):
        duty, relay = self.lamp.step(now_ms)
        if self.identify_until is not None:
            if ticks_diff(self.identify_until, now_ms) <= 0:
                self.identify_until = None
            else:
                # Blink between full and off: visible from the street in daylight.
                on = (ticks_diff(self.identify_until, now_ms) // _IDENTIFY_HALF_MS) & 1
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
            try:
                self.save_state(now)
            except OSError as e:
                self.log.add(now, "state save failed: %s" % e)

    def save_state(self, now):
        """Write the state file now: a command's change before its reply (docs/OPERATIONS.md, durability), or a
        due background save. OSError when flash fails; the caller decides what that means."""
        v = self.inbox.verifier
        floor = self._saved_sig_floor if v is None else v.floor_to_save()
        doc = {"meter": self.meter.snapshot(), "faults": self.faults.snapshot(), "override": self.override,
               "time": now if self.time.valid else self._saved_valid_time, "sig_floor": floor}
        self.state_file.save(now, doc)
        self.meter.saved(now)
        if v is not None:
            v.floor_saved(floor)

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
            # Stamped with the time of the decision, not of the publish: the link's work in between (a poll, a
            # collection) would date a level after the program moved on (seconds apart at the sim's speed).
            t = now if self._decided_t is None else self._decided_t
            if self.link.publish(self.t_state, json.dumps(self.state_doc(t)).encode(), True):
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

    def event(self, now, doc):
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
        self.event(now, {"kind": "alarm", "name": name, "active": active, "detail": detail})

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
            self.event(now, {"kind": "config_error", "problems": self.problems})
            self.problems = []
        if self.link.connects == 1:
            why = configtrial.take_rollback_notice(self.store)
            if why is not None:
                self.event(now, {"kind": "config_rollback", "reason": why})
        self.log.add(now, "mqtt connected (%d)" % self.link.connects)
        if self.trial:
            configtrial.confirm(self.store)
            self.trial = False
            self.log.add(now, "config confirmed: it reached the broker")
        elif self.cfg_source == "config" and self.link.connects == 1 and \
                self.store.read(configmod.GOOD_FILE) is None:
            configtrial.confirm(self.store)

    def on_oversize(self, topic, size):
        now = self.board.clock.now()
        self.log.add(now, "discarded %d-byte message" % size)
        if topic == self.t_cmd:
            limit = self.cfg["mqtt"]["max_payload"]
            self._reply(error_reply(None, None, "payload of %d bytes exceeds %d" % (size, limit)))

    def on_message(self, topic, msg, retained):
        """Every command is answered. One that does not fit in the heap left is refused like any bad input: a
        MemoryError while it is parsed, checked, run or answered is caught here, the GC takes back what it built,
        and the reply says so. Commands are all or nothing (firmware/cmd_*.py), so a refused one changed nothing;
        one whose only failure was its reply got the short acknowledgement instead. The node never resets for it."""
        self._handling = None
        self._applied = False
        try:
            self._receive(topic, msg, retained)
        except MemoryError as e:
            cmd_id, kind = self._handling or (None, None)
            msg = None
            self._handling = None
            gc.collect()
            print_exception(e)  # the serial console shows which allocation failed
            self.memory_refusals += 1
            reply = {"id": cmd_id, "ok": True, "cmd": kind} if self._applied else error_reply(cmd_id, kind,
                                                                                              OUT_OF_MEMORY)
            try:
                self._reply(reply)
            except MemoryError:
                pass  # not even a short reply fits now: the sender's timeout tells it; the lamp goes on
        self.release_ota()  # an update command or chunk loaded the agent: it goes once it has nothing left to do

    def _receive(self, topic, msg, retained):
        if topic == self.t_status:
            # Only a live "offline" (a stale Last Will the broker published after our birth) needs a new birth.
            # A retained copy is what the broker held from before this connection (our goodbye, or the Will of
            # the reset): it arrives while we subscribe, before on_connect publishes the birth that replaces it.
            # Answering it too published every birth after a reset twice.
            if not retained and (b'"online": false' in msg or b'"online":false' in msg):
                self._publish_birth()
            return
        if topic == self.t_ota:  # update chunks: binary, acknowledged on the reply topic so the sender paces itself
            r = self.ota_agent().chunk(msg)
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
        uptime_s = ticks_diff(self.board.clock.ticks_ms(), self._boot_ms) // 1000
        if b'"ota_' in msg:
            # An update command, most likely: its agent is loaded before the payload is parsed. Loaded after, the
            # module's function objects had to find room beside a parsed 50-file manifest (11 KB of small blocks),
            # and at 104 KB they did not. A payload that only mentions one loads it for nothing, once. If even this
            # does not fit, the command goes on: refused later, its reply then carries its id.
            try:
                self.ota_agent()
            except MemoryError:
                gc.collect()
        try:
            cmd = self.inbox.check(msg, retained, now, self.time.valid, self.cfg["security"]["max_age_s"], route,
                                   uptime_s)
            if self.inbox.verifier is not None and self.inbox.verifier.pending_floor is not None:
                self._save_replay_floor(cmd, now)
        except Rejected as r:
            if r.reply["error"] == OUT_OF_MEMORY:
                self.memory_refusals += 1
            self._reply(r.reply)
            return
        msg = None  # the payload is not needed any more: room for what the command builds
        previous = self.inbox.previous_reply(cmd["id"])
        if previous is not None:
            self.link.publish(self.t_reply, previous)
            return
        kind = cmd["cmd"]
        self._handling = (cmd["id"], kind)
        try:
            reply = self.execute(cmd, now)
        except Invalid as e:
            reply = error_reply(cmd["id"], kind, str(e))
        except (OSError, ValueError, KeyError, TypeError) as e:  # a bug must not take the node down: report it
            print_exception(e)
            reply = error_reply(cmd["id"], kind, "internal error: %s" % e.__class__.__name__)
        self._applied = kind != "get" and reply.get("ok") is True
        cmd = None
        if kind == "get":
            # Only commands that act need "answered again, not run again". A `get` is harmless to repeat, and its
            # reply (a config is several KB) must not be pinned in RAM 24 times over on a 100 KB heap.
            self._reply_streamed(reply)
        else:
            self.inbox.remember(self._handling[0], self._reply(reply))
        self._note_heap()

    def _save_replay_floor(self, cmd, now):
        """A signed command dated ahead of the node's clock: its ts reaches flash before it acts, or it is refused
        (firmware/signing.py: otherwise a restart soon after would let it be replayed)."""
        if not self.state_file.command_room(now):
            raise Rejected(error_reply(cmd["id"], cmd["cmd"], BUDGET_SPENT))
        try:
            self.save_state(now)
        except OSError as e:
            raise Rejected(error_reply(cmd["id"], cmd["cmd"], "cannot store the replay floor: %s" % e))

    def _reply(self, reply):
        """Publish a reply and return its bytes (the repeat cache keeps those of commands that act: all short)."""
        data = json.dumps(reply).encode()
        self.link.publish(self.t_reply, data)
        return data

    def _reply_streamed(self, reply):
        """Publish a `get` reply written into the socket in pieces: a config or a log is several KB, more than a
        fragmented heap holds in one run. Only for those: streaming allocates every piece on its way (about 2.7 KB
        of small objects for a telemetry-sized document, measured, against 288 bytes whole)."""
        self.link.publish_json(self.t_reply, reply)

    # --- commands --------------------------------------------------------------------------------------------------

    def execute(self, cmd, now):
        kind = cmd["cmd"]
        name = "ota" if kind.startswith("ota_") else _RUNNERS.get(kind)
        if name is None:
            return error_reply(cmd["id"], kind, "not supported by this firmware")
        module = "firmware.cmd_" + name
        try:
            run = cold.load(module).run
        except (ImportError, SyntaxError, AttributeError) as e:
            # A release whose command module is missing or broken: that command is refused, the node runs on.
            cold.drop(module)
            print_exception(e)
            return error_reply(cmd["id"], kind, "cannot load %s: %s" % (module, e.__class__.__name__))
        try:
            return run(self, cmd, now)
        finally:
            run = None
            cold.drop(module)

    def _do_reset(self):
        kind = self.pending_reset
        self.pending_reset = None
        now = self.board.clock.now()
        self._persist(now, force=True)
        bootguard.request(self.store, "safe" if kind == "safe" else "reboot")
        if kind == "config":
            configtrial.mark(self.store)
        self.log.add(now, "reset requested (%s)" % kind)
        # QoS 1, acknowledged before DISCONNECT, else left to the Last Will (Link.close): the goodbye is delivered.
        self.link.close(self.t_status, json.dumps({"online": False, "reason": kind}).encode())
        self.board.system.reset()


def _manifest_hmac(key, msg):
    # The update agent checks a signature at ota_begin and on a resume, minutes apart: the signing code is loaded
    # for each check only, not held for the whole transfer.
    return cold.call("firmware.signing", "hmac_sha256", key, msg)


def _valid_override(ov):
    if not isinstance(ov, dict):
        return None
    level = ov.get("level")
    until = ov.get("until")
    if isinstance(level, int) and 0 <= level <= 100 and (until is None or isinstance(until, int)):
        return {"level": level, "until": until}
    return None
