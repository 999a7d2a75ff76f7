"""The published MQTT contract: JSON Schemas of every message and the AsyncAPI document, generated from the code.

Commands come from firmware.commands.COMMANDS (the schema the node itself enforces). The messages the node *sends*
are declared here with the same firmware.schema field types, so the two directions speak one vocabulary; keep them
true to firmware/node.py (state_doc, tele_doc, _event*, execute, error_reply, on_connect, _do_reset) and
firmware/ota.py (OtaAgent.begin/status/commit/abort/chunk replies, pending_report events). The end-to-end tests
check every message a real node sends against these schemas (host_tests/contract_check.py).

    python tools/contract.py           write docs/api/schemas/*.json and docs/api/asyncapi.yaml
    python tools/contract.py --check   exit 1 when the committed files differ from what would be written

For tests (host-side, CPython only; `from tools.contract import validate_message, topic_kind`):
    validate_message(kind, payload)  None, or raises jsonschema.ValidationError naming the path
    topic_kind(topic, prefix)        "status" | "state" | "tele" | "event" | "reply" | "cmd" | "ota" for a topic

asyncapi.yaml is written as JSON (JSON is YAML 1.2) because the project venv carries no YAML library; any AsyncAPI
tool reads it as YAML.
"""

import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from firmware import commands, faults, ota  # noqa: E402
from firmware import config as configmod  # noqa: E402
from firmware.version import VERSION  # noqa: E402
from firmware.schema import (  # noqa: E402
    NAME_CHARS, REQUIRED, Bool, Dict, Enum, Field, Float, Int, Invalid, List, Nullable, Str, built)

API_DIR = os.path.join(ROOT, "docs", "api")
SCHEMA_DIR = os.path.join(API_DIR, "schemas")
ASYNCAPI_FILE = os.path.join(API_DIR, "asyncapi.yaml")
DRAFT = "https://json-schema.org/draft/2020-12/schema"
DEFAULT_PREFIX = "city/lights"
API_VERSION = VERSION  # follows the firmware version while the API is young

# ---------------------------------------------------------------------------------------------------------------------
# Host-side field types for what the schema module does not need on the node (constants, optional keys, patterns).

_ABSENT = object()


class Const(Field):
    """Exactly this JSON value (e.g. "online": true)."""

    def __init__(self, value, doc=""):
        Field.__init__(self, REQUIRED, doc)
        self.value = value

    def check(self, value, path=""):
        if value is not self.value and (type(value) is not type(self.value) or value != self.value):
            raise Invalid(path, "must be %r" % (self.value,))
        return value

    def to_json_schema(self):
        s = {"const": self.value}
        if self.doc:
            s["description"] = self.doc
        return s


class Opt(Field):
    """A key the node sends only sometimes (every other key of an outgoing message is always present)."""

    def __init__(self, inner, doc=""):
        Field.__init__(self, _ABSENT, doc or inner.doc)
        self.inner = inner

    def check(self, value, path=""):
        return self.inner.check(value, path)

    def to_json_schema(self):
        s = self.inner.to_json_schema()
        if self.doc:
            s["description"] = self.doc
        return s


class Pattern(Str):
    """A string matching a regular expression (written in the subset common to ECMA-262 and Python)."""

    def __init__(self, maxlen, regex, doc=""):
        Str.__init__(self, maxlen, doc=doc)
        self.regex = regex

    def check(self, value, path=""):
        Str.check(self, value, path)
        if not re.search(self.regex[:-1] + r"\Z" if self.regex.endswith("$") else self.regex, value):
            raise Invalid(path, "must match " + self.regex)
        return value

    def to_json_schema(self):
        s = Str.to_json_schema(self)
        s["pattern"] = self.regex
        return s


class AnyOf(Field):
    def __init__(self, choices, doc=""):
        Field.__init__(self, REQUIRED, doc)
        self.choices = choices

    def check(self, value, path=""):
        raise NotImplementedError("host-side schema only")

    def to_json_schema(self):
        s = {"anyOf": [c.to_json_schema() for c in self.choices]}
        if self.doc:
            s["description"] = self.doc
        return s


class Out(Dict):
    """An object the node sends: every key not wrapped in Opt() is always present (null-able ones included)."""

    def to_json_schema(self):
        s = Dict.to_json_schema(self)
        req = [k for k, f in self.fields.items() if not isinstance(f, Opt)]
        if req:
            s["required"] = req
        return s


def _out(fields, doc=""):
    return Out(fields, doc=doc)


# ---------------------------------------------------------------------------------------------------------------------
# Vocabulary shared by the outgoing messages.

UNIX_MAX = 4102444800  # 2100-01-01, the same bound the commands use for ts
U31 = 2147483647
NODE_ID = Str(32, minlen=1, charset=NAME_CHARS, doc="node id: the topic segment")
GROUP = Str(32, minlen=1, charset=NAME_CHARS, doc="group name")
FW = Str(32, minlen=1, doc="firmware version")
T = Nullable(Int(946684800, UNIX_MAX), doc="Unix seconds by the node's clock; null while its time is not valid")
LEVEL = Int(0, 100, doc="lamp level in %")
REASON = Pattern(48, "^(override|calibrate|photocell|photocell:no-time|failsafe|"
                     "(special|program):[a-z0-9_-]{1,16}( \\(light sensor fault\\))?)$",
                 doc="who decided the level: override, calibrate (the calibrate command steps the lamp), "
                     "special:<program>, program:<program>, photocell, photocell:no-time or failsafe; a program "
                     "reason ends in \" (light sensor fault)\" where the photocell would rule but its sensor is "
                     "flagged (light_sensor_fault) or gives no readings")
ACTIVE_FAULTS = tuple(n for n in faults.NAMES if n != "supply_loss")  # supply_loss is momentary, never active
ENERGY_WH = Float(0, 1e9, doc="lamp energy since commissioning, Wh")
BURN_H = Float(0, 1e6, doc="lamp burning hours")
CMD_ID = Str(40, minlen=1, charset=commands.ID_CHARS, doc="the command's id, echoed")

STATUS_ONLINE = _out({
    "online": Const(True),
    "fw": FW,
    "id": NODE_ID,
    "groups": List(GROUP, 8, doc="group command topics this node obeys"),
    "safe_mode": Bool(doc="true: running the safe configuration after repeated crashes"),
    "boot_decision_ms": Int(0, U31, doc="ms from boot to the first lamp decision (made before any network)"),
}, "Birth message, retained, sent on every (re)connect.")

STATUS_OFFLINE = _out({
    "online": Const(False),
    "reason": Opt(Enum(("reboot", "safe", "config", "rollback", "ota")),
                  doc="present when the node said goodbye before a reset it chose: reboot and safe (the reboot "
                      "command), config (a config change that needs a restart), rollback (a new config never "
                      "reached the broker), ota (into a committed update, or back from one that did not confirm "
                      "in time); absent in the Last Will, which the broker publishes when the link died"),
}, "The node is offline: its Last Will (retained, QoS 1) or its goodbye before a requested reset (retained, QoS 1; "
   "the node disconnects only once the broker acknowledged it, else the Last Will follows).")

OVERRIDE = Nullable(_out({
    "level": LEVEL,
    "until": Nullable(Int(0, UNIX_MAX), doc="Unix seconds the override ends; null: until cleared"),
}), doc="the override in force, or null")

STATE = _out({
    "level": LEVEL,
    "reason": REASON,
    "mode": Enum(("astro", "photocell", "hybrid", "safe"), doc="control mode; safe in safe mode"),
    "override": OVERRIDE,
    "faults": List(Enum(ACTIVE_FAULTS), len(ACTIVE_FAULTS), doc="active alarms, sorted"),
    "time_valid": Bool(doc="the node believes its clock"),
    "time_source": Nullable(Str(16, minlen=1), doc="rtc, ntp, cmd...; null while time is not valid"),
    "energy_wh": ENERGY_WH,
    "burn_h": BURN_H,
    "switch_ons": Int(0, U31, doc="lamp switch-on count"),
    "fw": FW,
    "config": Enum(("config", "good", "defaults"), doc="which configuration is running: the last one written, "
                                                       "the last known good one, or the built-in defaults"),
    "safe_mode": Bool(),
    "t": T,
}, "The node's current state, retained; published when it changes and after every (re)connect.")

TELE = _out({
    "t": T,
    "level": Float(0, 100, doc="lamp output level now (fades included), %"),
    "lux": Nullable(Float(0, 1e6), doc="ambient light, lux; null on a sensor error"),
    "v": Nullable(Float(-1000, 1000), doc="volts; null on a meter error"),
    "a": Nullable(Float(-1000, 1000), doc="amps"),
    "w": Nullable(Float(-1e6, 1e6), doc="watts"),
    "pf": Nullable(Float(-1, 1), doc="power factor"),
    "energy_wh": ENERGY_WH,
    "burn_h": BURN_H,
    "rssi": Nullable(Int(-127, 0), doc="Wi-Fi signal, dBm; null when not known"),
    "heap_free": Int(0, U31, doc="free heap, bytes"),
    "uptime_s": Int(0, U31, doc="seconds since boot"),
    "link": _out({
        "connects": Int(0, U31), "drops": Int(0, U31),
        "queued": Int(0, 256, doc="events waiting for the broker"),
        "dropped": Int(0, U31, doc="events lost because the offline queue was full"),
    }),
}, "Telemetry, QoS 0, not retained: every report.telemetry_s and when power moves out of the deadband.")

_EVENT_BASE = {
    "seq": Int(1, U31, doc="event number since boot; restarts at 1 after a reset"),
    "t": T,
}


def _event(kind, fields, doc):
    d = {"kind": Const(kind)}
    d.update(fields)
    d.update(_EVENT_BASE)
    return _out(d, doc)


_F = Float(-1e6, 1e6)
DETAIL = AnyOf([
    _out({"v": _F, "a": _F, "w": _F, "level": Float(0, 100), "exp_a": Opt(_F), "exp_w": Opt(_F)},
         doc="electrical alarms: the reading and, when judged, the expected amps/watts"),
    _out({"reading": Nullable(AnyOf([List(AnyOf([Float(-1e9, 1e9), Str(64)]), 8), Str(200)]))},
         doc="current_sensor_fault: the raw meter reading"),
    _out({"reason": Enum(("range", "stuck", "dark_day", "bright_night")), "lux": Nullable(Float(-1e9, 1e9))},
         doc="light_sensor_fault"),
    _out({"cause": Enum(("power_on", "brownout"))}, doc="supply_loss"),
    _out({"level": Float(0, 100), "sun": Nullable(Float(-90, 90)), "v": Opt(_F), "a": Opt(_F), "w": Opt(_F)},
         doc="day_burning: the level, the sun's elevation (null without valid time) and the reading if any"),
    Const(None),
], doc="what the detector saw")

EVENT_ALARM = _event("alarm", {
    "name": Enum(faults.NAMES, doc="TALQ-style alarm name"),
    "active": Bool(doc="true: raised; false: cleared (supply_loss sends both at once)"),
    "detail": DETAIL,
}, "An alarm raised or cleared.")
EVENT_OVERRIDE_END = _event("override_end", {}, "A timed override ran out; the program decides again.")
EVENT_CONFIG_ERROR = _event("config_error", {
    "problems": List(Str(400), 8, min_len=1, doc="why config files were refused at boot"),
}, "Sent once after boot when a configuration file was refused (the node runs an older or the default one).")

EVENT_CALIBRATED = _event("calibrated", {
    "nominal_a": built(faults.SCHEMA).fields["nominal_a"],
}, "Calibration finished: the learned [level, amps] table, now stored as faults.nominal_a.")
EVENT_CALIBRATION_FAILED = _event("calibration_failed", {
    "reason": Str(400, minlen=1, doc="e.g. \"no stable current readings\""),
}, "Calibration finished without a usable table; the previous one stays.")
EVENT_CONFIG_ROLLBACK = _event("config_rollback", {
    "reason": Str(400, doc="why the change was undone, e.g. \"new config did not reach the broker within 300 s\""),
}, "Sent once after the restart that undid a remote config change (the node came back with its previous config, "
   "status reason rollback).")

# OTA (firmware/ota.py, docs/OTA.md).
SEMVER = Pattern(17, "^[0-9]{1,5}\\.[0-9]{1,5}\\.[0-9]{1,5}$", doc="an update's version, MAJOR.MINOR.PATCH")
SLOT = Enum(ota.SLOTS, doc="flash slot of an update image")
IMAGE = Enum((ota.FACTORY,) + ota.SLOTS, doc="an image: the factory one (flashed by cable) or an update slot")
POSITION = {
    "session": Int(0, 65535, doc="the transfer: first 16 bits of the manifest signature, carried by every chunk"),
    "file": Int(0, ota.MAX_FILES, doc="index of the file the node expects next (= the file count when complete)"),
    "offset": Int(0, ota.MAX_FILE_BYTES, doc="the next byte of that file the node expects"),
    "complete": Bool(doc="every file received and checked: send ota_commit"),
}
OTA_REASON = Str(400, minlen=1, doc="why: e.g. \"reset before the new version confirmed\"")

EVENT_OTA_CONFIRMED = _event("ota_confirmed", {
    "version": SEMVER,
    "running": FW,
}, "An update finished its trial: connected to the broker and running ota.confirm_s; the new version stays.")
EVENT_OTA_ROLLBACK = _event("ota_rollback", {
    "version": Str(20, minlen=1, doc="the version that was given up"),
    "running": FW,
    "reason": OTA_REASON,
}, "An update was given up (trial not confirmed, a reset on trial, or the new image did not import); the node "
   "runs the previous image again.")

EVENTS = {"alarm": EVENT_ALARM, "override_end": EVENT_OVERRIDE_END, "config_error": EVENT_CONFIG_ERROR,
          "config_rollback": EVENT_CONFIG_ROLLBACK, "calibrated": EVENT_CALIBRATED,
          "calibration_failed": EVENT_CALIBRATION_FAILED, "ota_confirmed": EVENT_OTA_CONFIRMED,
          "ota_rollback": EVENT_OTA_ROLLBACK}


def _ok(name, fields, doc):
    d = {"id": CMD_ID, "ok": Const(True), "cmd": Const(name)}
    d.update(fields)
    return _out(d, doc)


U53 = 2 ** 53 - 1  # byte counters grow for years; JSON readers keep integers exact up to here
LINK_COUNTERS = _out({
    "connects": Int(0, U31), "drops": Int(0, U31), "failures": Int(0, U31, doc="failed connection attempts"),
    "oversize": Int(0, U31, doc="incoming messages discarded unread for their size"),
    "rejected": Int(0, U31, doc="commands refused"),
    "last_error": Str(400, doc="why the link last failed or dropped; empty when it never did"),
    "tx_bytes": Int(0, U53), "rx_bytes": Int(0, U53),
})
EVENT_COUNTERS = _out({
    "produced": Int(0, U31, doc="events made since boot (the last seq)"),
    "acked": Int(0, U31, doc="events the broker acknowledged"),
    "queued": Int(0, 256, doc="events waiting for the broker"),
    "dropped": Int(0, U31, doc="events lost because the offline queue was full"),
})
FLASH_COUNTERS = _out({"state_writes_today": Int(0, U31), "store_writes": Int(0, U31)})
MEMORY_COUNTERS = _out({
    "heap_free": Int(-1, U31, doc="free GC heap now, after a collection, bytes (-1: the runtime cannot tell)"),
    "heap_low": Int(-1, U31, doc="lowest free heap after a command since boot (collected): the live high-water mark"),
    "refused": Int(0, U31, doc="commands refused because the heap could not hold them (nothing of them applied)"),
    "loop_errors": Int(0, U31, doc="loop iterations cut short by a MemoryError (the next step drives the lamp)"),
})
COUNTERS = _out({"energy_wh": ENERGY_WH,
                 "energy_estimated_wh": Float(0, 1e9, doc="the part of energy_wh counted from the lamp model "
                                                          "while the meter had no reading"),
                 "burn_h": BURN_H, "switch_ons": Int(0, U31), "supply_losses": Int(0, U31)})
LOG_LINE = Pattern(200, "^[0-9]+ ", doc="\"<seconds since 2000-01-01 UTC> <text>\"")

REPLIES = {
    "set": _ok("set", {"level": LEVEL, "until": Nullable(Int(0, UNIX_MAX), doc="Unix end of the override")},
               "Override in force; level is the level the lamp was set to."),
    "clear": _ok("clear", {"level": LEVEL, "reason": REASON}, "Override ended; the level and who decided it now."),
    "get": AnyOf([
        _ok("get", {"state": STATE}, "what=state"),
        _ok("get", {"config": Field()}, "what=config (schema filled in by config_schema())"),
        _ok("get", {"log": List(LOG_LINE, 200)}, "what=log, oldest first"),
        _ok("get", {"counters": COUNTERS, "link": LINK_COUNTERS, "events": EVENT_COUNTERS, "flash": FLASH_COUNTERS,
                    "memory": MEMORY_COUNTERS}, "what=counters"),
    ], doc="The state, the config (secrets \"***\"), the log ring or the counters."),
    "program": _ok("program", {}, "Programs (and calendar) stored and in force."),
    "config": _ok("config", {"restart": Bool(doc="true: the node restarts to apply it (status goes offline with "
                                                 "reason config)")}, "Configuration stored."),
    "time": _ok("time", {"delta_s": Int(-U31, U31, doc="correction applied to the clock, s")}, "Clock set."),
    "identify": _ok("identify", {"seconds": Int(1, 600)}, "Blinking."),
    "reboot": _ok("reboot", {}, "Restart follows (status goes offline with reason reboot or safe)."),
    "calibrate": _ok("calibrate", {
        "levels": List(LEVEL, 16, min_len=1, doc="the levels the lamp is stepped through, in order"),
        "seconds": Int(1, U31, doc="how long it takes; a calibrated or calibration_failed event follows"),
    }, "Calibration started: state reason calibrate until it ends."),
    "ota_begin": _ok("ota_begin", dict({
        "resumed": Bool(doc="true: the same signed manifest was already staging; continue at the position given"),
        "slot": SLOT, "version": SEMVER}, **POSITION),
        "Manifest accepted, the spare slot prepared: send chunks from this position on <node>/ota."),
    "ota_status": _ok("ota_status", {
        "version": FW,
        "active": IMAGE,
        "trial": Bool(doc="the running version is on trial (not confirmed yet)"),
        "previous": Nullable(IMAGE, doc="the image a rollback returns to; null when none"),
        "staging": Nullable(_out(dict({
            "version": SEMVER, "slot": SLOT,
            "files": Int(1, ota.MAX_FILES), "bytes": Int(0, U31, doc="bytes received"),
            "total": Int(0, U31, doc="bytes of the whole update")}, **POSITION)),
            doc="the transfer on flash (survives a reboot), or null"),
        "result": Nullable(AnyOf([
            _out({"kind": Const("ota_confirmed"), "version": SEMVER, "from": FW, "reported": Bool()}),
            _out({"kind": Const("ota_rollback"), "version": Str(20, minlen=1), "reason": OTA_REASON,
                  "reported": Bool()}),
        ]), doc="the outcome of the last update (reported: its event was sent), or null"),
    }, "The running version, the images, the transfer in progress and the last outcome."),
    "ota_commit": _ok("ota_commit", {
        "version": SEMVER, "slot": SLOT,
        "restart": Const(True, doc="the node restarts into the new version, on trial (status reason ota)"),
    }, "Every staged file verified from flash; the switch is made and the node restarts."),
    "ota_abort": _ok("ota_abort", {"aborted": Bool(doc="false: there was no transfer (the spare slot is emptied "
                                                       "anyway)")},
                     "Transfer dropped, the spare slot emptied."),
}

# The acknowledgement of every binary chunk on <node>/ota, sent on the reply topic: where the node continues.
_CHUNK_BASE = {"id": Const("ota", doc="chunks carry no id: always \"ota\""), "cmd": Const("ota_chunk")}
REPLY_OTA_CHUNK = AnyOf([
    _out(dict(_CHUNK_BASE, ok=Const(True), **POSITION), doc="stored: the position of the next byte the node expects"),
    _out(dict(_CHUNK_BASE, ok=Const(False),
              error=Str(256, minlen=1, doc="e.g. \"out of order\", \"bad chunk length 0\", "
                                           "\"no transfer: send ota_begin\""),
              **{k: Opt(f) for k, f in POSITION.items()}),
         doc="refused: the position to continue from (only the session when there is no transfer; none after a "
             "flash error or a chunk shorter than its header)"),
], doc="Acknowledgement of a chunk: the next byte the node expects, or why the chunk was refused.")

# ota_commit refused because the transfer is incomplete or a file failed to verify also says where to continue.
REPLY_ERROR = _out(dict({
    "id": Nullable(Str(40), doc="the command's id when it could be read, else null"),
    "ok": Const(False),
    "cmd": Opt(Enum(tuple(sorted(commands.COMMANDS))),
               doc="the command's name whenever the payload named a known command (even when the rest of it was "
                   "refused); absent when the payload could not be read or named no known command"),
    "error": Str(256, minlen=1, doc="why, naming the field by its path in the command sent: e.g. \"level: must "
                                    "be in 0..100\", \"set.report.telemetry_s: must be in 10..86400\"; at most "
                                    "256 characters (a longer reason is cut and ends in \"...\")"),
    "stale": Opt(Const(True), doc="present when refused as stale: retained, or ts too old / in the future"),
}, **{k: Opt(f, doc="ota_commit refusals: " + f.doc) for k, f in POSITION.items()}), "The command did nothing.")

# ---------------------------------------------------------------------------------------------------------------------
# Schema generation. Every rule the node checks is published by the owning field's to_json_schema() (program's
# "default" program and date pattern, config's reserved node ids, commands' config patch); only what the node sends
# is shaped here.


def _at(schema, *path):
    """schema[path...], stepping through a Nullable's anyOf when a key is missing; KeyError when the code moved."""
    s = schema
    for k in path:
        if k not in s and "anyOf" in s:
            s = [x for x in s["anyOf"] if x.get("type") != "null"][0]
        s = s[k]
    return s


def _require_all(schema):
    """A normalised document (what the node sends) has every key: mark them all required."""
    if isinstance(schema, dict):
        if "properties" in schema:
            schema["required"] = list(schema["properties"])
        for v in schema.values():
            _require_all(v)
    elif isinstance(schema, list):
        for v in schema:
            _require_all(v)
    return schema


def config_schema(redacted=False):
    """The whole configuration as the node holds it (every key present); redacted: secrets may read "***"."""
    s = _require_all(configmod.SCHEMA.to_json_schema())
    if redacted:
        for path in configmod.SECRET_PATHS:
            parent = s
            for k in path[:-1]:
                parent = _at(parent, "properties", k)
            parent = _at(parent, "properties")
            parent[path[-1]] = {"anyOf": [{"const": "***"}, parent[path[-1]]],
                                "description": "secret: reported as \"***\" when set"}
    return s


def command_schema(name):
    return commands.COMMANDS[name].to_json_schema()


def reply_schema(name):
    s = REPLIES[name].to_json_schema()
    if name == "get":
        _at(s["anyOf"][1], "properties")["config"] = config_schema(redacted=True)
    return s


def _doc(title, schema, description=None):
    """A schema file: $schema and title first, then the description, then the rules."""
    out = {"$schema": DRAFT, "title": title}
    doc = schema.pop("description", None)
    if description or doc:
        out["description"] = description or doc
    out.update(schema)
    return out


def schemas():
    """{file stem: JSON Schema document} for every message, in a stable order."""
    out = {
        "status_online": _doc("status (online)", STATUS_ONLINE.to_json_schema()),
        "status_offline": _doc("status (offline)", STATUS_OFFLINE.to_json_schema()),
        "state": _doc("state", STATE.to_json_schema()),
        "tele": _doc("tele", TELE.to_json_schema()),
    }
    for kind, f in EVENTS.items():
        out["event_" + kind] = _doc("event " + kind, f.to_json_schema())
    for name in sorted(commands.COMMANDS):
        out["cmd_" + name] = _doc("command " + name, command_schema(name))
    out["command"] = _doc("any command", {"oneOf": [command_schema(n) for n in sorted(commands.COMMANDS)]},
                          "Any command; `cmd` says which (see the cmd_<name> schemas).")
    for name in sorted(commands.COMMANDS):
        out["reply_" + name] = _doc("reply to " + name, reply_schema(name))
    out["reply_error"] = _doc("error reply", REPLY_ERROR.to_json_schema())
    out["reply_ota_chunk"] = _doc("chunk acknowledgement", REPLY_OTA_CHUNK.to_json_schema())
    out["config"] = _doc("configuration", config_schema(),
                         "The node configuration (config.json on the node's flash) with every key; `get config` "
                         "returns it with secrets as \"***\".")
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Validation for tests: every message a real node emits must pass.

_validators = {}


def _validator(stem):
    v = _validators.get(stem)
    if v is None:
        from jsonschema import Draft202012Validator, validators

        def ecma_pattern(validator, pattern, instance, schema):
            # JSON Schema patterns are ECMA-262, where "$" ends the string; Python's "$" also matches before a
            # final newline, which would let "abc\n" through a charset the node refuses.
            if not validator.is_type(instance, "string"):
                return
            p = pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith("\\$") else pattern
            if not re.search(p, instance):
                from jsonschema import ValidationError

                yield ValidationError("%r does not match %r" % (instance, pattern))

        cls = validators.extend(Draft202012Validator, {"pattern": ecma_pattern})
        v = cls(_all_schemas()[stem])
        _validators[stem] = v
    return v


_cache = {}


def _all_schemas():
    if "s" not in _cache:
        _cache["s"] = schemas()
    return _cache["s"]


def schema_for(kind, payload):
    """The schema file stem that a `kind` ("status", "state", "tele", "event", "reply", "cmd") payload must match."""
    p = payload if isinstance(payload, dict) else {}
    if kind == "status":
        return "status_online" if p.get("online") is True else "status_offline"
    if kind in ("state", "tele"):
        return kind
    if kind == "event":
        k = p.get("kind")
        return "event_" + k if k in EVENTS else "event_alarm"
    if kind == "reply":
        c = p.get("cmd")
        if c == "ota_chunk":
            return "reply_ota_chunk"  # acknowledged or refused: one message shape either way
        if p.get("ok") is not True:
            return "reply_error"
        return "reply_" + c if c in REPLIES else "reply_error"
    if kind == "cmd":
        c = p.get("cmd")
        return "cmd_" + c if c in commands.COMMANDS else "command"
    if kind in _all_schemas():
        return kind
    raise ValueError("unknown message kind %r" % (kind,))


def validate_message(kind, payload):
    """None when `payload` (a dict, or the raw JSON bytes/str) is a valid `kind` message; else raises
    jsonschema.ValidationError whose message starts with the schema name and the JSON path of the fault."""
    from jsonschema import ValidationError
    from jsonschema.exceptions import best_match

    if isinstance(payload, (bytes, bytearray)):
        payload = payload.decode("utf-8")
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError as e:
            raise ValidationError("%s: payload is not JSON (%s)" % (kind, e))
    stem = schema_for(kind, payload)
    err = best_match(_validator(stem).iter_errors(payload))
    if err is None:
        return None
    where = "/".join(str(x) for x in err.absolute_path) or "(root)"
    err.message = "%s: %s: %s" % (stem, where, err.message)
    raise err


def topic_kind(topic, prefix=DEFAULT_PREFIX):
    """The message kind of an MQTT topic under `prefix`, or None when the topic is not part of the API."""
    if isinstance(topic, (bytes, bytearray)):
        topic = topic.decode()
    if not topic.startswith(prefix + "/"):
        return None
    parts = topic[len(prefix) + 1:].split("/")
    if parts == ["all", "cmd"] or (len(parts) == 3 and parts[0] == "group" and parts[2] == "cmd"):
        return "cmd"
    if len(parts) == 2 and parts[0] not in configmod.RESERVED_IDS and \
            parts[1] in ("status", "state", "tele", "event", "reply", "cmd", "ota"):
        return parts[1]
    return None


# ---------------------------------------------------------------------------------------------------------------------
# The AsyncAPI document.

_ID_RULE = "lower-case letters, digits, '_' and '-', 1 to 32 characters, never `group` or `all`"

_INTRO = """\
MQTT API of the streetlight node firmware. One node is one MQTT client (client id = node id) that publishes under
`<prefix>/<nodeId>/` and obeys commands on its own, its groups' and the broadcast command topics. The prefix is the
node's `mqtt.prefix` setting (default `city/lights`); the addresses below use the default.

Every payload is one compact UTF-8 JSON object, except the binary update chunks on `<prefix>/<nodeId>/ota`.
Times in payloads are Unix seconds (`t`, `ts`, `until`, `utc`);
`t` is null while the node does not trust its clock. Schemas are JSON Schema draft 2020-12 (using only keywords
that mean the same in draft-07), generated from the firmware's own validators by tools/contract.py.

Commands and replies: a command carries an `id` (1-40 of `A-Za-z0-9_-.:`) and `cmd`; the node answers on its own
`<prefix>/<nodeId>/reply` topic - also for group and broadcast commands, so a group command gets one reply per node,
told apart by topic. A reply echoes `id` and has `ok`. Checks, in order (the first failure is the reply, with
`ok: false` and `error` naming the field): size (`mqtt.max_payload`, default 8192 bytes; larger messages are dropped
unread, and answered only on the node's own topic), UTF-8/JSON/nesting (at most 8 levels), the command's schema;
a retained command is refused as stale (`stale: true`) - so a command left retained on the broker never acts on a
reconnect; then the signature when the node requires signed commands; then, when the node's time is valid and the
command has `ts`, a command older than `security.max_age_s` (default 300 s) or more than 120 s in the future is
refused as stale. A command whose `id` the node has seen among its last 24 is not run again: the node re-sends the
reply it gave the first time (byte for byte), so a client may retry with the same id safely.

Signing: when the node is configured with `security.require_signed`, every command must carry `ts` and `sig`, an
HMAC-SHA256 (64 lower-case hex digits) over the command's target (`node:<id>`, `group:<name>` or `all`) and its
canonical JSON without `sig`, made with the node key on the node's own topic and with the group key on group and
broadcast topics (firmware/signing.py and SECURITY.md define the bytes; tools/signing.py makes them). A signature
is bound to its target, and an accepted id is not accepted again while its `ts` is fresh. Unsigned, badly signed,
expired or replayed commands get an error reply and do nothing. Use TLS (port 8883) and broker ACLs so that only
operators may publish to `.../cmd` and `.../ota`.

Updates (docs/OTA.md): `ota_begin` carries the manifest signed with the fleet's update key; the image then streams
as binary chunks on `<prefix>/<nodeId>/ota`, each acknowledged on the reply topic with the next byte the node
expects (`cmd: ota_chunk`, `id: "ota"`); `ota_commit` verifies the image from flash, switches and restarts the
node on trial (status goes offline with reason `ota`). The outcome arrives as an `ota_confirmed` or `ota_rollback`
event and stays visible in `ota_status`. Chunks are not signed: the signed manifest fixes every file's sha256, and
a chunk of another transfer (another session) is ignored.
"""


def _param(desc):
    return {"description": desc}


def _op_binding(qos, retain):
    return {"mqtt": {"qos": qos, "retain": retain, "bindingVersion": "0.2.0"}}


def _msg(stem, name, title, summary):
    return {"name": name, "title": title, "summary": summary, "contentType": "application/json",
            "payload": {"$ref": "schemas/%s.json" % stem}}


def _camel(name):
    return "".join(w.capitalize() for w in name.split("_"))


# The chunk header, field by field: firmware.ota.CHUNK_HEADER is ">BBHI" (big-endian, 8 bytes).
_CHUNK_FIELDS = (("format", 0, "uint8", "always %d" % ota.CHUNK_FORMAT),
                 ("file", 1, "uint8", "index of the file in the manifest's `files`"),
                 ("session", 2, "uint16", "the transfer: int(manifest_sig[:4], 16)"),
                 ("offset", 4, "uint32", "byte offset of the data in that file"))


def _chunk_message():
    import struct

    if struct.calcsize(ota.CHUNK_HEADER) != ota.HEADER_LEN or len(_CHUNK_FIELDS) != len(ota.CHUNK_HEADER) - 1:
        raise ValueError("firmware.ota.CHUNK_HEADER changed: update _CHUNK_FIELDS")
    layout = "; ".join("bytes %d-%d `%s` %s: %s" % (off, off + int(t[4:]) // 8 - 1, name, t, doc)
                       for name, off, t, doc in _CHUNK_FIELDS)
    return {
        "name": "otaChunk", "title": "Update chunk",
        "summary": "Binary: an 8-byte big-endian header (struct `%s`) and 1 to %d bytes of file data."
                   % (ota.CHUNK_HEADER, ota.MAX_CHUNK),
        "contentType": "application/octet-stream",
        "payload": {
            "type": "string", "format": "binary",
            "description": "Not JSON. Header: %s; then bytes %d.. the data (1 to %d bytes, never past the file's "
                           "size). Only the next byte the node expects is accepted (the acknowledgement names it); "
                           "empty files get no chunk." % (layout, ota.HEADER_LEN, ota.MAX_CHUNK),
            "x-header": [{"name": name, "offset": off, "type": t, "byteOrder": "big-endian", "description": doc}
                         for name, off, t, doc in _CHUNK_FIELDS],
            "x-data": {"offset": ota.HEADER_LEN, "minLength": 1, "maxLength": ota.MAX_CHUNK},
        },
    }


def asyncapi():
    """The AsyncAPI 3.0.0 document as a dict."""
    msgs = {
        "statusOnline": _msg("status_online", "statusOnline", "Birth", STATUS_ONLINE.doc),
        "statusOffline": _msg("status_offline", "statusOffline", "Offline (Last Will or goodbye)", STATUS_OFFLINE.doc),
        "state": _msg("state", "state", "State", STATE.doc),
        "tele": _msg("tele", "tele", "Telemetry", TELE.doc),
        "replyError": _msg("reply_error", "replyError", "Error reply", REPLY_ERROR.doc),
        "replyOtaChunk": _msg("reply_ota_chunk", "replyOtaChunk", "Chunk acknowledgement", REPLY_OTA_CHUNK.doc),
        "otaChunk": _chunk_message(),
    }
    event_ids = []
    for kind, f in EVENTS.items():
        mid = "event" + _camel(kind)
        msgs[mid] = _msg("event_" + kind, mid, "Event " + kind, f.doc)
        event_ids.append(mid)
    cmd_ids = []
    reply_ids = ["replyError", "replyOtaChunk"]
    for name in sorted(commands.COMMANDS):
        cid = "cmd" + _camel(name)
        msgs[cid] = _msg("cmd_" + name, cid, "Command " + name, built(commands.COMMANDS[name]).doc)
        cmd_ids.append(cid)
        rid = "reply" + _camel(name)
        msgs[rid] = _msg("reply_" + name, rid, "Reply to " + name, REPLIES[name].doc)
        reply_ids.append(rid)

    def refs(ids):
        return {i: {"$ref": "#/components/messages/" + i} for i in ids}

    node_param = {"nodeId": {"$ref": "#/components/parameters/nodeId"}}
    base = DEFAULT_PREFIX + "/{nodeId}/"
    channels = {
        "status": {"address": base + "status", "parameters": node_param, "messages": refs(["statusOnline",
                                                                                           "statusOffline"]),
                   "description": "Retained. On every connect the node publishes the birth message (retained, QoS "
                                  "0); its Last Will `{\"online\": false}` (retained, QoS 1) is published by the "
                                  "broker when the link dies (keepalive expired, TCP lost). Before a reset it "
                                  "chose, the node publishes `{\"online\": false, \"reason\": ...}` itself "
                                  "(retained, QoS 1; without the broker's PUBACK it drops the link, so the Last "
                                  "Will says offline instead). One birth per connection. A "
                                  "subscriber therefore always finds the current online/offline status retained; "
                                  "the node is offline when the last status has `online: false`. Do not judge "
                                  "by the age of state or tele: state is sent only on change."},
        "state": {"address": base + "state", "parameters": node_param, "messages": refs(["state"]),
                  "description": "Retained, QoS 0. Published when level, reason, override, active faults, time "
                                 "validity or safe mode change, and again after every reconnect, so the retained "
                                 "copy is the current state (or the last one before the node went offline: check "
                                 "status)."},
        "tele": {"address": base + "tele", "parameters": node_param, "messages": refs(["tele"]),
                 "description": "QoS 0, not retained. Every `report.telemetry_s` (default 300 s) and at most every "
                                "`report.min_interval_s` when power moves more than `report.deadband_w_pct` of the "
                                "lamp's nominal power. Missed while offline (no backlog)."},
        "event": {"address": base + "event", "parameters": node_param,
                  "messages": refs(event_ids),
                  "description": "QoS 1, not retained, in order. Kept in a bounded queue (mqtt.queue_len, default "
                                 "32) while offline and delivered after reconnect; when it overflows the oldest are "
                                 "dropped and counted (tele link.dropped). `seq` counts events since boot (gaps = "
                                 "losses); QoS 1 may deliver an event twice: the same seq within one boot is the "
                                 "same event. `t` is when it happened, not when it was delivered."},
        "reply": {"address": base + "reply", "parameters": node_param, "messages": refs(reply_ids),
                  "description": "QoS 0, not retained. One reply per command received, whichever topic carried "
                                 "it: subscribe to `" + DEFAULT_PREFIX + "/+/reply` to collect the replies of a "
                                 "group or broadcast command (the topic says which node answered). The reply to a "
                                 "`reboot` or restarting `config` is sent before the node goes offline."},
        "cmd": {"address": base + "cmd", "parameters": node_param, "messages": refs(cmd_ids),
                "description": "Commands to one node. Publish with QoS 1 and retain false. A retained command "
                               "is refused as stale when the broker hands it out on a (re)subscribe; under MQTT "
                               "3.1.1 a node already online receives its first delivery without the retain flag "
                               "and acts on it (`fleet.py clear-retained` removes such messages)."},
        "ota": {"address": base + "ota", "parameters": node_param, "messages": refs(["otaChunk"]),
                "description": "Update chunks to one node, binary (see otaChunk), after an accepted `ota_begin`. "
                               "Publish with QoS 1, retain false, at most a few unacknowledged at a time "
                               "(tools/ota.py keeps 4): each is acknowledged on the node's reply topic with the "
                               "next byte it expects (`replyOtaChunk`), which is also where to continue after a "
                               "refusal, a lost message or a reboot."},
        "groupCmd": {"address": DEFAULT_PREFIX + "/group/{group}/cmd",
                     "parameters": {"group": {"$ref": "#/components/parameters/group"}},
                     "messages": refs(cmd_ids),
                     "description": "Commands to every node listing the group in `node.groups`. Each node "
                                    "answers on its own reply topic."},
        "allCmd": {"address": DEFAULT_PREFIX + "/all/cmd", "messages": refs(cmd_ids),
                   "description": "Commands to every node under the prefix. Each node answers on its own reply "
                                  "topic."},
    }

    def chan_msgs(ch):
        return [{"$ref": "#/channels/%s/messages/%s" % (ch, m)} for m in channels[ch]["messages"]]

    operations = {
        "sendStatus": {"action": "send", "channel": {"$ref": "#/channels/status"}, "messages": chan_msgs("status"),
                       "summary": "Birth (QoS 0) and goodbye/Last Will (QoS 1), all retained.",
                       "bindings": _op_binding(1, True)},
        "sendState": {"action": "send", "channel": {"$ref": "#/channels/state"}, "messages": chan_msgs("state"),
                      "summary": "Current state, retained.", "bindings": _op_binding(0, True)},
        "sendTele": {"action": "send", "channel": {"$ref": "#/channels/tele"}, "messages": chan_msgs("tele"),
                     "summary": "Telemetry.", "bindings": _op_binding(0, False)},
        "sendEvent": {"action": "send", "channel": {"$ref": "#/channels/event"}, "messages": chan_msgs("event"),
                      "summary": "Alarms and notable events, queued while offline.",
                      "bindings": _op_binding(1, False)},
        "sendReply": {"action": "send", "channel": {"$ref": "#/channels/reply"}, "messages": chan_msgs("reply"),
                      "summary": "Replies to commands.", "bindings": _op_binding(0, False)},
    }
    operations["receiveOta"] = {
        "action": "receive", "channel": {"$ref": "#/channels/ota"}, "messages": chan_msgs("ota"),
        "summary": "Update chunks to this node. The node subscribes with QoS 1.",
        "bindings": _op_binding(1, False),
        "reply": {"channel": {"$ref": "#/channels/reply"},
                  "messages": [{"$ref": "#/channels/reply/messages/replyOtaChunk"}]},
    }
    for ch, summary in (("cmd", "Commands to this node."), ("groupCmd", "Commands to a group."),
                        ("allCmd", "Commands to all nodes.")):
        operations["receive" + ch[0].upper() + ch[1:]] = {
            "action": "receive", "channel": {"$ref": "#/channels/" + ch}, "messages": chan_msgs(ch),
            "summary": summary + " The node subscribes with QoS 1.",
            "bindings": _op_binding(1, False),
            "reply": {"channel": {"$ref": "#/channels/reply"}, "messages": chan_msgs("reply")},
        }

    return {
        "asyncapi": "3.0.0",
        "id": "urn:streetlight:node-api",
        "info": {
            "title": "Streetlight node MQTT API",
            "version": API_VERSION,
            "description": _INTRO,
            "license": {"name": "see the repository LICENSE"},
            "x-generated-by": "tools/contract.py - do not edit; run `python tools/contract.py`",
        },
        "defaultContentType": "application/json",
        "servers": {
            "production": {"host": "broker.city.example:8883", "protocol": "secure-mqtt", "protocolVersion": "3.1.1",
                           "description": "The city broker (placeholder host): TLS, user/password per client, "
                                          "ACLs per topic.",
                           "security": [{"$ref": "#/components/securitySchemes/userPassword"}]},
            "local": {"host": "localhost:1883", "protocol": "mqtt", "protocolVersion": "3.1.1",
                      "description": "A broker on the test bench or the simulator (`make demo`), no TLS."},
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": msgs,
            "parameters": {
                "nodeId": _param("The node id (`node.id`, default `n-<chip id>`): " + _ID_RULE + "."),
                "group": _param("A group name from the nodes' `node.groups`: " + _ID_RULE + "."),
            },
            "securitySchemes": {"userPassword": {"type": "userPassword",
                                                 "description": "MQTT user name and password (mqtt.user, "
                                                                "mqtt.password); commands may also be signed, "
                                                                "see the document description."}},
        },
    }


# ---------------------------------------------------------------------------------------------------------------------
# Files.


def _dump(doc):
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def outputs():
    """{absolute path: file text} of every generated file."""
    out = {}
    for stem, doc in schemas().items():
        out[os.path.join(SCHEMA_DIR, stem + ".json")] = _dump(doc)
    out[ASYNCAPI_FILE] = _dump(asyncapi())
    return out


def check():
    """Paths whose committed text differs from the generated one, plus stale schema files nobody generates."""
    bad = []
    want = outputs()
    for path, text in sorted(want.items()):
        try:
            with open(path, encoding="utf-8") as f:
                if f.read() != text:
                    bad.append(path)
        except OSError:
            bad.append(path)
    if os.path.isdir(SCHEMA_DIR):
        for name in sorted(os.listdir(SCHEMA_DIR)):
            p = os.path.join(SCHEMA_DIR, name)
            if name.endswith(".json") and p not in want:
                bad.append(p)
    return bad


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if "--check" in argv:
        bad = check()
        for p in bad:
            print("out of date: %s" % os.path.relpath(p, ROOT))
        if bad:
            print("run: python tools/contract.py")
            return 1
        return 0
    os.makedirs(SCHEMA_DIR, exist_ok=True)
    want = outputs()
    for name in os.listdir(SCHEMA_DIR):
        p = os.path.join(SCHEMA_DIR, name)
        if name.endswith(".json") and p not in want:
            os.remove(p)
    for path, text in sorted(want.items()):
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    print("wrote %d files under %s" % (len(want), os.path.relpath(API_DIR, ROOT)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
