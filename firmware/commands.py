"""The command API: what an operator may send, how it is checked, and the rules that keep old messages harmless.

A command is a compact JSON object with an `id` (echoed in the reply) and a `cmd` naming what to do. Checking runs
before anything acts, in this order, and the first failure is the reply:
1. size, UTF-8, JSON, nesting depth;  2. the command's schema (errors name the field);
3. retained → refused as stale. Only a copy the broker marks retained can be told apart: MQTT 3.1.1 clears the
   flag when it forwards a retained publish to a subscriber that is already connected (docs/OPERATIONS.md);
4. signature, when the node requires signed commands (firmware/signing.py: expiry and replays, with no hole);
5. age: with valid time, a `ts` older than security.max_age_s (or far in the future) is stale;
6. unsigned nodes: a repeated `id` gets the reply it got the first time, without acting twice
   (`Inbox.previous_reply`). Signed nodes refuse it as `replayed` instead (the Verifier's table lasts max_age_s).

Every refusal has the same shape (`error_reply`): id (null when unreadable), ok false, cmd when the payload named
a known command, error, and stale true for retained and too-old commands.

`Inbox.check()` returns the validated command or raises `Rejected` carrying the reply. Executing it is the node's job.
"""

import json

from firmware import program
from firmware.otadoc import MANIFEST_SCHEMA
from firmware.compat import const
from firmware.repeats import RepeatCache
from firmware.schema import Bool, Dict, Enum, Int, Invalid, Lazy, Map, Nullable, OneOf, Str, built
from firmware.timebase import T2K_UNIX_OFFSET

ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:"
_REMEMBERED_IDS = const(24)
_FUTURE_SLACK_S = const(120)
_MAX_DEPTH = const(8)
_MAX_ERROR = const(256)
_BLANKS = (0x20, 0x09, 0x0A, 0x0D)
# What a command that did not fit in the heap is answered: nothing of it was applied (firmware/node.py on_message).
OUT_OF_MEMORY = "out of memory: refused, nothing changed"
NOT_JSON = "payload is not JSON"


def structure_error(payload, limit):
    """None, or why the JSON text cannot be taken: read on the bytes BEFORE json.loads.
    - "nested too deeply": more than `limit` arrays/objects open at once. A small message of a thousand '[' would
      otherwise exhaust the parser (RecursionError on CPython, MemoryError on a small heap): one message from anyone
      allowed on the topic would crash the node.
    - "payload is not JSON": brackets that do not pair up, an object or array still open at the end, or anything but
      whitespace after the outermost one closed. MicroPython's json.loads reads `{"id":"a","cmd":"set","level":1`
      — a command cut off in transit — or one closed with the wrong bracket as if it were whole, and acts on it.
    Text without brackets is left to json.loads (and the object check after it). Nothing is allocated per byte."""
    closers = bytearray(limit)  # the bracket each open level must be closed with
    depth = 0
    in_str = False
    esc = False
    ended = False  # the outermost array/object has closed
    for b in payload:
        if in_str:
            if esc:
                esc = False
            elif b == 0x5C:  # backslash
                esc = True
            elif b == 0x22:  # quote
                in_str = False
        elif b == 0x20 or b == 0x0A or b == 0x0D or b == 0x09:
            pass
        elif ended:
            return NOT_JSON
        elif b == 0x22:
            in_str = True
        elif b == 0x5B or b == 0x7B:  # [ {
            if depth == limit:
                return "nested too deeply"
            closers[depth] = b + 2  # ] and } are two code points after [ and {
            depth += 1
        elif b == 0x5D or b == 0x7D:  # ] }
            if depth == 0 or closers[depth - 1] != b:
                return NOT_JSON
            depth -= 1
            ended = depth == 0
    if depth or in_str:
        return NOT_JSON
    return None


def _command(name, fields, doc=""):
    base = {
        "id": Str(40, minlen=1, charset=ID_CHARS, doc="chosen by the sender, echoed in the reply"),
        "cmd": Enum((name,)),
        "ts": Nullable(Int(0, 4102444800), doc="Unix time the command was made; used to refuse stale commands"),
        "sig": Nullable(Str(64, minlen=64, charset="0123456789abcdef"), doc="HMAC-SHA256 hex, see SECURITY.md"),
    }
    for k, v in fields.items():
        base[k] = v
    return Dict(base, doc=doc)


class _Section(Dict):
    """A value of `config.set`: one section of the full config, checked when merged into it, not here."""

    def check(self, value, path=""):
        if not isinstance(value, dict):
            raise Invalid(path, "must be an object")
        return value


class _Patch(Map):
    """`config.set`: section name → partial section. The node checks each is an object, then validates the merged
    config whole; the published JSON Schema spells out every section (host tools only: the node never builds it)."""

    def to_json_schema(self):
        from firmware import config  # imported here: commands must not load the whole config schema for this

        def part(f):
            # config.merge: a (non-null) object merges key by key, so every key is optional; lists, maps (the
            # programs) and null-able objects are replaced whole, so they must be complete.
            f = built(f)
            if not isinstance(f, Dict):
                return f.to_json_schema()
            return {"type": "object", "properties": {k: part(v) for k, v in f.fields.items()},
                    "additionalProperties": False}

        # Objects only: the calendar (a list) is changed by the program command.
        secs = [(k, f) for k, f in config.SCHEMA.fields.items() if f.json_type == "object"]
        return {"type": "object", "description": self.doc + "; objects merge key by key, the rest replaces",
                "properties": {k: part(f) for k, f in secs}, "additionalProperties": False,
                "maxProperties": len(secs)}


# A command's schema is built only while such a command is checked (schema.Lazy): never all of them at once.
COMMANDS = {
    "set": Lazy(lambda: _command("set", {
        "level": Int(0, 100, doc="lamp level in %"),
        "duration_s": Nullable(Int(1, 2592000), doc="override length; null: until cleared"),
    }, doc="Override the program with a level, optionally for a while; the program resumes after.")),
    "clear": Lazy(lambda: _command("clear", {}, doc="End the override; the program decides again.")),
    "get": Lazy(lambda: _command("get", {
        "what": Enum(("state", "config", "log", "counters"), "state"),
    }, doc="Reply with the state, the config (secrets hidden), the log ring or the counters.")),
    "program": Lazy(lambda: _command("program", {
        "programs": program.PROGRAMS_SCHEMA,
        "calendar": Nullable(program.CALENDAR_SCHEMA, doc="null keeps the calendar"),
    }, doc="Replace the dimming programs (and calendar); validated as a whole config before use.")),
    "config": Lazy(lambda: _command("config", {
        "set": _Patch(Str(16, minlen=1), _Section({}), 20, doc="partial config, merged and validated"),
    }, doc="Change configuration; applied only if the whole result is valid; rolled back if the broker is lost.")),
    "time": Lazy(lambda: _command("time", {
        "utc": Int(946684800, 4102444800, doc="Unix seconds"),
    }, doc="Offer the node the time (checked like any time source).")),
    "identify": Lazy(lambda: _command("identify", {
        "seconds": Int(1, 600, 30),
    }, doc="Blink the lamp so a technician can find the post.")),
    "reboot": Lazy(lambda: _command("reboot", {
        "safe": Bool(False, doc="come back in safe mode"),
    }, doc="Restart the node after replying.")),
    "calibrate": Lazy(lambda: _command(
        "calibrate", {}, doc="Learn the healthy lamp's current at each dim level (takes minutes).")),
    "ota_begin": Lazy(lambda: _command("ota_begin", {
        "manifest": MANIFEST_SCHEMA,
        "manifest_sig": Str(64, minlen=64, charset="0123456789abcdef", doc="HMAC-SHA256 of the manifest, update key"),
        "force": Bool(False, doc="allow a version older than the running one"),
    }, doc="Start (or resume) an update: the signed manifest of the new image; chunks follow on <node>/ota.")),
    "ota_status": Lazy(lambda: _command(
        "ota_status", {}, doc="Running version, slots, trial, the transfer in progress, last outcome.")),
    "ota_commit": Lazy(lambda: _command(
        "ota_commit", {}, doc="Verify the staged image from flash, switch to it (on trial), restart.")),
    "ota_abort": Lazy(lambda: _command("ota_abort", {}, doc="Drop the transfer in progress and empty the spare slot.")),
}


COMMAND = OneOf("cmd", COMMANDS, doc="any command")


class Rejected(Exception):
    """A command that must not act. `reply` is the dict to send back."""

    def __init__(self, reply):
        super().__init__(reply["error"])
        self.reply = reply


def utf8_ok(payload):
    """Strict UTF-8, and no \\uD800-\\uDFFF escapes. MicroPython's decoder accepts overlong forms and encoded
    surrogates, and its JSON parser turns surrogate escapes into such bytes; echoed back in a reply they would make
    it undecodable for every consumer. The API is ASCII anyway (ids, names), so nothing valid is lost."""
    i = payload.find(b"\\u")
    while i >= 0:
        if payload[i + 2:i + 3] in (b"d", b"D") and payload[i + 3:i + 4] in b"89abcdefABCDEF":
            return False
        i = payload.find(b"\\u", i + 2)
    if not payload or max(payload) < 0x80:
        return True  # ASCII: the usual case, decided without a Python loop
    n = len(payload)
    i = 0
    while i < n:
        b = payload[i]
        if b < 0x80:
            i += 1
            continue
        # Lead byte → number of continuation bytes and the allowed range of the first one (RFC 3629, table 3-7).
        if 0xC2 <= b <= 0xDF:
            k, lo, hi = 1, 0x80, 0xBF
        elif 0xE0 <= b <= 0xEF:
            k = 2
            lo = 0xA0 if b == 0xE0 else 0x80
            hi = 0x9F if b == 0xED else 0xBF  # ED A0..BF would encode a surrogate
        elif 0xF0 <= b <= 0xF4:
            k = 3
            lo = 0x90 if b == 0xF0 else 0x80
            hi = 0x8F if b == 0xF4 else 0xBF
        else:
            return False
        if i + k >= n or not lo <= payload[i + 1] <= hi:
            return False
        for j in range(i + 2, i + k + 1):
            if not 0x80 <= payload[j] <= 0xBF:
                return False
        i += k + 1
    return True


def peek_string(payload, key):
    """The string after `key` (b'"id"') and a colon in the raw bytes of a command too big to parse, or None: only a
    plain string (no escapes) of at most 40 bytes, and only if even that fits in the memory left."""
    try:
        i = payload.find(key)
        if i < 0:
            return None
        i += len(key)
        n = len(payload)
        seen_colon = False
        while i < n and (payload[i] in _BLANKS or (payload[i] == 0x3A and not seen_colon)):
            seen_colon = seen_colon or payload[i] == 0x3A
            i += 1
        if not seen_colon or i >= n or payload[i] != 0x22:
            return None
        j = payload.find(b'"', i + 1)
        if j < 0 or j - i - 1 > 40:
            return None
        raw = bytes(payload[i + 1:j])
        if b"\\" in raw:
            return None
        return raw.decode()
    except (MemoryError, UnicodeError):
        return None


def error_reply(cmd_id, cmd, error, stale=False):
    """The one shape of every refusal. cmd: the command's name when the payload named a known one, else None."""
    r = {"id": cmd_id, "ok": False}
    if cmd:
        r["cmd"] = cmd
    # Errors may quote the sender's own field names: bound them so a reply never echoes a huge payload.
    r["error"] = error if len(error) <= _MAX_ERROR else error[:_MAX_ERROR - 3] + "..."
    if stale:
        r["stale"] = True
    return r


class Inbox:
    """Checks incoming command payloads and remembers recent ids with their replies."""

    def __init__(self, max_bytes, verifier=None):
        self.max_bytes = max_bytes
        self.verifier = None  # firmware.signing.Verifier or None: use_verifier()
        self.repeats = None
        self.use_verifier(verifier)
        self.rejected = 0

    def check(self, payload, retained, now_t2k, time_valid, max_age_s, route=False, uptime_s=0):
        """uptime_s: seconds since boot (monotonic); signed nodes refuse commands signed before their boot."""
        cmd_id = None
        name = None
        try:
            if len(payload) > self.max_bytes:
                raise Invalid("", "payload larger than %d bytes" % self.max_bytes)
            if not payload:
                # What a broker forwards when someone deletes a retained message on the topic (fleet.py
                # clear-retained): no command, answered so that the deletion is seen.
                raise Invalid("", "empty payload")
            # utf8_ok is the strict check (no decoded copy is made: json.loads reads the bytes themselves, and the
            # payload may be the MQTT receive buffer, which a copy of a few KB could not be found room for).
            if not utf8_ok(payload):
                raise Invalid("", "payload is not UTF-8")
            why = structure_error(payload, _MAX_DEPTH)
            if why is not None:
                raise Invalid("", why)
            try:
                doc = json.loads(payload)
            except ValueError:
                raise Invalid("", NOT_JSON)
            except MemoryError:
                # Not even parsed: the id (and name) are read from the bytes, so that the sender is told why
                # instead of waiting for an answer with its id (a program push at 92 KB, measured).
                doc = None
                cmd_id = peek_string(payload, b'"id"')
                name = peek_string(payload, b'"cmd"')
                self.rejected += 1
                raise Rejected(error_reply(cmd_id, name if name in COMMANDS else None, OUT_OF_MEMORY))
            if not isinstance(doc, dict):
                raise Invalid("", "payload must be a JSON object")
            if isinstance(doc.get("id"), str) and len(doc["id"]) <= 40:
                cmd_id = doc["id"]
            if isinstance(doc.get("cmd"), str) and doc["cmd"] in COMMANDS:
                name = doc["cmd"]
            try:
                cmd = COMMAND.check(doc, "")  # nesting is already bounded: structure_error() read the bytes
            except MemoryError:
                # Refused like any bad input, and answered here because the id is known now (the node's own
                # out-of-memory handler could only answer id null): the sender sees why, not a timeout.
                doc = None
                self.rejected += 1
                raise Rejected(error_reply(cmd_id, name, OUT_OF_MEMORY))
        except Invalid as e:
            self.rejected += 1
            raise Rejected(error_reply(cmd_id, name, str(e)))
        if retained:
            self.rejected += 1
            raise Rejected(error_reply(cmd["id"], cmd["cmd"], "retained commands are ignored", stale=True))
        if self.verifier is None:
            if self.previous_reply(cmd["id"]) is not None:
                return cmd  # a repeat (a QoS 1 re-delivery): the node answers with the first reply, acts not again
        else:
            reason = self.verifier.verify(doc, now_t2k, time_valid, route, uptime_s)
            if reason:
                self.rejected += 1
                raise Rejected(error_reply(cmd["id"], cmd["cmd"], reason))
        if time_valid and cmd["ts"] is not None:
            age = now_t2k - (cmd["ts"] - T2K_UNIX_OFFSET)
            if age > max_age_s or age < -_FUTURE_SLACK_S:
                self.rejected += 1
                raise Rejected(error_reply(cmd["id"], cmd["cmd"], "stale: ts is %d s from node time" % age,
                                           stale=True))
        return cmd

    def use_verifier(self, verifier):
        """Signed commands (a Verifier) or not (None). Signed nodes answer a repeat with "replayed" and keep no
        replies; the others keep the replies of recent commands that acted, in a buffer made now, at boot."""
        self.verifier = verifier
        if verifier is not None:
            self.repeats = None
        elif self.repeats is None:
            self.repeats = RepeatCache(_REMEMBERED_IDS)

    def previous_reply(self, cmd_id):
        """The reply already sent for this id, or None: a repeated command is answered again, not run again."""
        return None if self.repeats is None else self.repeats.reply_for(cmd_id)

    def remember(self, cmd_id, reply_bytes):
        if self.repeats is not None:
            self.repeats.remember(cmd_id, reply_bytes)
