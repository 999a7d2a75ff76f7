"""The node's configuration: one schema assembled from each module's own section, loading with last-known-good.

Every section is declared next to the code that uses it (ESPHome style); this module only puts them together,
adds the node identity and reporting sections, checks references between sections, and loads the file.

Loading order on the node (`load(store)`):
1. `config.json` — validated as a whole; used when valid.
2. `config.good.json` — the last configuration the node ran well with (kept by `confirm_good`).
3. the documented defaults (Padang, one local broker): the lamp always has a program to follow.
Every problem met on the way is returned so the node can report it over MQTT once it is connected.
"""

import json

from firmware.hw_config import HW_SCHEMA
from firmware import clo, control, faults, lampout, metering, mqtt_link, otadoc, photocell, program, timebase
from firmware.schema import NAME_CHARS, Bool, Dict, Int, Invalid, Lazy, List, Nullable, Str, depth_ok

CONFIG_FILE = "config.json"
GOOD_FILE = "config.good.json"
MAX_CONFIG_BYTES = 16384
RESERVED_IDS = ("group", "all")


def _check_node(v, path):
    if v["id"] is not None and v["id"] in RESERVED_IDS:
        raise Invalid(path + ".id", "'%s' is reserved" % v["id"])


class _NodeId(Str):
    """A node id. _check_node refuses the reserved words (so the error names node.id); the JSON Schema says so too."""

    def to_json_schema(self):
        s = Str.to_json_schema(self)
        s["not"] = {"enum": list(RESERVED_IDS)}
        return s


def _node():
    return Dict({
        "id": Nullable(_NodeId(32, minlen=1, charset=NAME_CHARS), doc="topic segment; default: n-<chip id>"),
        "groups": List(Str(32, minlen=1, charset=NAME_CHARS), 8, [], doc="group command topics this node obeys"),
    }, check=_check_node)


def _report():
    return Dict({
        "telemetry_s": Int(10, 86400, 300, doc="period of the telemetry message"),
        "deadband_w_pct": Int(1, 100, 10, doc="report at once when power moves more than this % from the last report"),
        "min_interval_s": Int(1, 3600, 10, doc="report-by-exception never more often than this"),
    })


def _time():
    return Dict({
        "ntp_hosts": List(Str(253, minlen=1,
                              charset="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:"),
                          3, [], doc="NTP servers, host or host:port; tried in turn. Empty: time only from the `time` "
                                     "command (and the RTC)"),
        "ntp_interval_s": Int(600, 604800, 21600),
        "max_jump_s": Int(60, 31536000, 3600, doc="larger corrections need confirmation"),
    })


def _security():
    return Dict({
        "require_signed": Bool(False, doc="refuse commands without a valid HMAC signature"),
        "node_key": Nullable(Str(128, minlen=16), doc="per-node HMAC key (hex or text); never reported"),
        "group_key": Nullable(Str(128, minlen=16), doc="key for group and broadcast commands"),
        "max_age_s": Int(10, 86400, 300, doc="commands older than this (by their ts) are refused as stale"),
    })


def _system():
    return Dict({
        "wdt_ms": Int(2000, 120000, 30000, doc="watchdog timeout; fed only by a healthy control loop"),
        "control_ms": Int(100, 10000, 1000, doc="control loop period"),
        "crash_limit": Int(2, 20, 4, doc="abnormal resets within crash_window_s that start safe mode"),
        "crash_window_s": Int(60, 86400, 1800),
        "healthy_after_s": Int(10, 3600, 120, doc="uptime after which a boot counts as good"),
        "confirm_config_s": Int(10, 3600, 300, doc="a remote config change must reach the broker within this"),
        "log_lines": Int(8, 200, 40),
    })


def _check_all(cfg, path):
    program.check_references(cfg)


SCHEMA = Dict({
    "node": Lazy(_node),
    "site": timebase.SITE_SCHEMA,
    "mqtt": mqtt_link.SCHEMA,
    "report": Lazy(_report),
    "time": Lazy(_time),
    "security": Lazy(_security),
    "system": Lazy(_system),
    "control": control.SCHEMA,
    "programs": program.PROGRAMS_SCHEMA,
    "calendar": program.CALENDAR_SCHEMA,
    "photocell": photocell.SCHEMA,
    "lamp": lampout.SCHEMA,
    "clo": clo.SCHEMA,
    "metering": metering.SCHEMA,
    "faults": faults.SCHEMA,
    "ota": otadoc.OTA_SCHEMA,
    "hw": HW_SCHEMA,
}, check=_check_all)

# Secrets are replaced by this in anything the node reports (get config, logs, errors).
SECRET_PATHS = (("mqtt", "password"), ("security", "node_key"), ("security", "group_key"), ("hw", "wifi", "password"),
                ("mqtt", "tls", "client_key"), ("ota", "update_key"))


def validate(doc):
    """Whole-document validation; returns the normalised config or raises Invalid naming the field."""
    if not depth_ok(doc, 12):
        raise Invalid("", "nested too deeply")
    return SCHEMA.check(doc, "")


def defaults():
    return SCHEMA.check({}, "")


def parse(data):
    """bytes → validated config, or Invalid with the reason (JSON syntax errors included)."""
    if data is None:
        raise Invalid("", "missing")
    if len(data) > MAX_CONFIG_BYTES:
        raise Invalid("", "larger than %d bytes" % MAX_CONFIG_BYTES)
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise Invalid("", "not JSON (%s)" % e)
    return validate(doc)


def load(store):
    """(config, source, problems): source is "config", "good" or "defaults"."""
    problems = []
    for name, source in ((CONFIG_FILE, "config"), (GOOD_FILE, "good")):
        data = store.read(name)
        if data is None:
            if source == "config":
                problems.append("%s: missing" % name)
            continue
        try:
            return parse(data), source, problems
        except Invalid as e:
            problems.append("%s: %s" % (name, e))
    return defaults(), "defaults", problems


def change(cfg, patch, checked=()):
    """validate(merge(cfg, patch)) for a valid `cfg`, at a fraction of the memory: only the sections the patch names
    are merged and checked again (in the schema's order, so the first error is the same one); the other sections
    are valid already and are shared with `cfg`, not copied. Then the checks across sections run on the whole.
    `checked`: sections of the patch that are whole and were normalised by this same section schema already (the
    `program` command's own schema checks programs and calendar): taken as they are, not copied once more."""
    if not isinstance(patch, dict):
        raise Invalid("", "must be an object")
    if not depth_ok(patch, 12):
        raise Invalid("", "nested too deeply")
    fields = SCHEMA.fields
    for key in patch:
        if key not in fields:
            raise Invalid(str(key), "unknown field")
    new = dict(cfg)
    for key, field in fields.items():
        if key in patch:
            v = patch[key]
            if key in checked:
                new[key] = v
                continue
            if isinstance(v, dict) and isinstance(cfg.get(key), dict) and key not in ("programs",):
                v = merge(cfg[key], v, key)
            new[key] = field.check(v, key)
    _check_all(new, "")
    return new


def merge(base, patch, path=""):
    """A config change: `patch` is a partial document; objects merge key by key, everything else replaces."""
    if not isinstance(patch, dict):
        raise Invalid(path, "must be an object")
    out = dict(base)
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k not in ("programs",):
            out[k] = merge(out[k], v, path + "." + k if path else k)
        else:
            out[k] = v
    return out


def redact(cfg):
    """The config as it may be reported: secrets replaced by "***" (or left null when unset). Read-only.

    Only the dicts on a secret's path are copied; everything else is shared with `cfg` (the caller only serialises
    the result): a full copy would hold the config twice while the `get config` reply is built."""
    out = dict(cfg)
    for keys in SECRET_PATHS:
        d = out
        for k in keys[:-1]:
            sub = d.get(k)
            if not isinstance(sub, dict):
                d = None
                break
            sub = dict(sub)
            d[k] = sub
            d = sub
        if d is not None and d.get(keys[-1]) is not None:
            d[keys[-1]] = "***"
    return out


def safe_mode(cfg):
    """What safe mode runs: photocell only, full level at night, no optional features; MQTT kept for diagnosis."""
    safe = dict(cfg)
    safe["control"] = dict(cfg["control"], mode="photocell", default_level=100)
    safe["programs"] = {"default": [{"at": "sunset", "offset_min": 0, "level": 100}]}
    safe["calendar"] = []
    safe["clo"] = dict(cfg["clo"], enabled=False)
    return safe


def dumps(cfg):
    return json.dumps(cfg).encode()
