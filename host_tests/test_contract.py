"""The published MQTT contract (docs/api): up to date, valid, agreeing with the node's validators, examples true."""

import copy
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from jsonschema import Draft202012Validator, ValidationError

from conftest import ROOT

from firmware import config as configmod
from firmware.commands import COMMANDS, Inbox, Rejected, error_reply
from firmware.schema import Invalid
from firmware.timebase import T2K_UNIX_OFFSET
from tools import contract

API = os.path.join(ROOT, "docs", "api")
README = os.path.join(API, "README.md")
NOW_UNIX = 1773489600  # 2026-03-14 19:00 in Padang: the node clock the README's stale example assumes


def _schema_files():
    d = os.path.join(API, "schemas")
    return sorted(os.path.join(d, n) for n in os.listdir(d) if n.endswith(".json"))


# --- (a) up to date


def test_generated_files_are_up_to_date():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "contract.py"), "--check"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


def test_check_notices_an_edited_and_an_orphan_file(tmp_path, monkeypatch):
    api = tmp_path / "api"
    shutil.copytree(API, api)
    monkeypatch.setattr(contract, "API_DIR", str(api))
    monkeypatch.setattr(contract, "SCHEMA_DIR", str(api / "schemas"))
    monkeypatch.setattr(contract, "ASYNCAPI_FILE", str(api / "asyncapi.yaml"))
    assert contract.main(["--check"]) == 0
    state = api / "schemas" / "state.json"
    state.write_text(state.read_text().replace('"maximum": 100', '"maximum": 101', 1))
    assert contract.main(["--check"]) == 1
    assert contract.main([]) == 0 and contract.main(["--check"]) == 0
    (api / "schemas" / "old_message.json").write_text("{}")
    assert contract.main(["--check"]) == 1
    contract.main([])
    assert not (api / "schemas" / "old_message.json").exists()


def test_every_command_and_reply_is_declared():
    names = set(COMMANDS)
    assert set(contract.REPLIES) == names
    stems = {os.path.basename(p)[:-5] for p in _schema_files()}
    for n in names:
        assert "cmd_" + n in stems and "reply_" + n in stems


# --- (b) valid schemas


def test_every_schema_file_is_a_valid_draft_2020_12_schema():
    files = _schema_files()
    assert len(files) >= 20
    for p in files:
        with open(p) as f:
            doc = json.load(f)
        assert doc["$schema"] == contract.DRAFT, p
        Draft202012Validator.check_schema(doc)


def test_outgoing_objects_are_closed_and_complete():
    # The node sends every key of these (only Opt() keys may be missing) and nothing else.
    for stem in ("status_online", "state", "tele", "event_alarm", "reply_set", "reply_clear", "reply_ota_begin",
                 "reply_ota_status", "reply_ota_commit", "reply_ota_abort", "event_ota_confirmed",
                 "event_ota_rollback"):
        with open(os.path.join(API, "schemas", stem + ".json")) as f:
            s = json.load(f)
        assert s["additionalProperties"] is False, stem
        assert set(s["required"]) == set(s["properties"]), stem


# --- (c) README


def _blocks():
    with open(README) as f:
        text = f.read()
    fences = re.findall(r"^```json([^\n]*)\n(.*?)^```", text, re.S | re.M)
    out = []
    for tag, body in fences:
        assert tag.strip(), "every json block in README.md names its schema: ```json <schema>"
        out.append((tag.strip(), json.loads(body)))
    return out


def _kind_of(stem):
    for k in ("status", "event", "reply", "cmd"):
        if stem.startswith(k + "_"):
            return k
    return stem


def _node_verdict(doc, retained=False, time_valid=False):
    """What the node itself does with a command: (accepted, reply). Includes the whole-config check that `program`
    and `config` run before storing anything."""
    inbox = Inbox(8192)
    try:
        cmd = inbox.check(json.dumps(doc).encode(), retained, NOW_UNIX - T2K_UNIX_OFFSET, time_valid, 300)
    except Rejected as r:
        return False, r.reply
    patch = None
    if cmd["cmd"] == "program":
        patch = {"programs": cmd["programs"]}
        if cmd["calendar"] is not None:
            patch["calendar"] = cmd["calendar"]
    elif cmd["cmd"] == "config":
        patch = cmd["set"]
    if patch is not None:
        try:
            configmod.validate(configmod.merge(configmod.defaults(), patch))
        except Invalid as e:
            # The node names the field by its path in the command (firmware/cmd_config.py): under `set` for config.
            path = e.path
            if cmd["cmd"] == "config":
                path = "set." + path if path else "set"
            return False, error_reply(cmd["id"], cmd["cmd"], Invalid(path, e.reason).args[0])
    return True, None


def test_readme_examples_validate():
    blocks = _blocks()
    seen = set()
    for i, (tag, doc) in enumerate(blocks):
        if tag in ("cmd_invalid", "cmd_retained"):
            # A refused command: the next block is the exact reply the node's validator gives.
            nxt_tag, nxt = blocks[i + 1]
            assert nxt_tag == "reply_error", tag
            ok, reply = _node_verdict(doc, retained=tag == "cmd_retained", time_valid=True)
            assert not ok and reply == nxt, (doc, reply)
            continue
        kind = _kind_of(tag)
        assert contract.schema_for(kind, doc) == tag, tag
        contract.validate_message(kind, doc)
        if kind == "cmd":
            ok, reply = _node_verdict(doc, time_valid=True)
            assert ok, reply
        seen.add(tag)
    for name in COMMANDS:
        assert "cmd_" + name in seen, "README lacks an example of " + name
    for stem in ("status_online", "status_offline", "state", "tele", "event_alarm", "event_override_end",
                 "event_config_error", "event_config_rollback", "event_calibrated", "event_calibration_failed",
                 "event_ota_confirmed", "event_ota_rollback",
                 "reply_error",
                 "reply_ota_chunk"):
        assert stem in seen, stem


def test_a_wrong_readme_example_would_be_caught():
    # The checks above must be able to fail: break an example the same way a stale README would be broken.
    tag, doc = next(b for b in _blocks() if b[0] == "state")
    doc = dict(doc, level="60")
    with pytest.raises(ValidationError):
        contract.validate_message("state", doc)


# --- (d) agreement

_BASES = [
    {"id": "a", "cmd": "set", "level": 40},
    {"id": "a-1.b:c_D", "cmd": "set", "level": 0, "duration_s": 60, "ts": NOW_UNIX, "sig": "0" * 64},
    {"id": "b", "cmd": "clear", "ts": None},
    {"id": "c", "cmd": "get", "what": "config"},
    {"id": "d", "cmd": "time", "utc": NOW_UNIX},
    {"id": "e", "cmd": "identify"},
    {"id": "f", "cmd": "reboot", "safe": True},
    {"id": "g", "cmd": "calibrate"},
    {"id": "h", "cmd": "program", "programs": {"default": [{"at": "sunset", "level": 100},
                                                           {"at": "23:30", "offset_min": -15, "level": 40}]},
     "calendar": [{"program": "default", "weekdays": [0, 1], "from": "2026-01-01", "to": "2026-12-31"}]},
    {"id": "i", "cmd": "config", "set": {"report": {"telemetry_s": 60}, "node": {"id": "pdg-1", "groups": ["z"]},
                                         "photocell": {}, "mqtt": {"keepalive_s": 30}}},
    {"id": "j", "cmd": "config", "set": {"control": {"mode": "hybrid"}, "site": {"utc_offset_min": 420}}},
    {"id": "l", "cmd": "ota_begin", "manifest": {"format": 1, "version": "0.2.0", "files": [
        {"path": "firmware/node.py", "size": 100, "sha256": "0123456789abcdef" * 4}]}, "manifest_sig": "ab" * 32,
     "force": True},
    {"id": "m", "cmd": "ota_status"},
    {"id": "n", "cmd": "ota_commit", "ts": NOW_UNIX},
    {"id": "o", "cmd": "ota_abort"},
    {"id": "k", "cmd": "config", "set": {"security": {"max_age_s": 60, "node_key": "k" * 20},
                                         "time": {"ntp_hosts": ["ntp.city.example"]},
                                         "faults": {"lamp_failure": {"delay_s": 60}}, "mqtt": {"tls": {"ca": "QUJD"}},
                                         "hw": {"light": {"type": "ldr"}}}},
]

_WRONG = [None, True, False, 0, -1, 1.5, 7, 101, 10 ** 12, "", "x", "X" * 41, "abc\n", "a/b", "Sunset", "25:00",
          "12-31", "2026-02-30", [], [1], ["x"], {}, {"a": 1}, {"default": []}, "group", "all"]


def _paths(doc, prefix=()):
    """Every path inside a JSON document (objects and lists), the root excluded."""
    if isinstance(doc, dict):
        items = doc.items()
    elif isinstance(doc, list):
        items = enumerate(doc)
    else:
        return
    for k, v in items:
        yield prefix + (k,)
        yield from _paths(v, prefix + (k,))


def _set(doc, path, value, delete=False):
    d = copy.deepcopy(doc)
    parent = d
    for k in path[:-1]:
        parent = parent[k]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return d


def _schema_accepts(doc):
    try:
        contract.validate_message("cmd", doc)
        return True
    except ValidationError:
        return False


# Rules that span several fields or the whole config: JSON Schema cannot state them, the node's error reply
# names them. A disagreement is tolerated only when the node refused for one of these reasons.
# "must be a valid date": the date pattern checks the shape, the node also checks the day exists (2026-02-30).
_CROSS_FIELD = ("unknown program", "must be <= to", "must be <= backoff_max_s", "must be < off_lux",
                "already used by", "GPIO", "must be a valid date")


# Hand-picked refusals the mutations below would not produce.
_EXTRA = [
    {"id": "x", "cmd": "config", "set": {"calendar": []}},  # sections given to `config` must be objects
    {"id": "x", "cmd": "config", "set": {"nosuch": {}}},
    {"id": "x", "cmd": "config", "set": {"report": {"telemetry_s": 5}}},
    {"id": "x", "cmd": "config", "set": {"mqtt": {"tls": {"server_hostname": "b"}}}},  # tls goes whole
    {"id": "x", "cmd": "config", "set": {"programs": {"night": [{"at": "sunset", "level": 1}]}}},
    {"id": "x", "cmd": "program", "programs": {"default": [{"at": "sunset", "level": 1}] * 11}},
    {"id": "x", "cmd": "get", "what": "secrets"},
    {"id": "x" * 41, "cmd": "clear"},
    {"id": "x", "cmd": "clear", "sig": "A" * 64},
    {"id": "x", "cmd": "set", "level": 1, "ts": -1},
    {"id": "x", "cmd": "time", "utc": 946684799},
    {"id": "x"},
    {"cmd": "clear"},
]


def _mutants():
    yield from _EXTRA
    for base in _BASES:
        yield base
        for path in _paths(base):
            if path[-1] in ("cmd",):
                continue
            for w in _WRONG:
                yield _set(base, path, w)
            if isinstance(path[-1], str):
                yield _set(base, path, None, delete=True)
        yield dict(base, extra=1)


def test_command_schemas_agree_with_the_node_validator():
    checked = accepted = 0
    tolerated = []
    for doc in _mutants():
        node_ok, reply = _node_verdict(doc)
        schema_ok = _schema_accepts(doc)
        checked += 1
        accepted += node_ok
        if node_ok == schema_ok:
            continue
        if schema_ok and not node_ok and any(r in reply["error"] for r in _CROSS_FIELD):
            tolerated.append(reply["error"])
            continue
        pytest.fail("disagree (node %s, schema %s): %s -> %s" % (node_ok, schema_ok, json.dumps(doc), reply))
    for base in _BASES:
        assert _node_verdict(base)[0] and _schema_accepts(base), base
    assert checked > 1000 and accepted > 50
    assert len(tolerated) < checked // 50  # cross-field refusals stay the exception, not the rule


def test_both_refuse_a_trailing_newline_in_a_charset_string():
    # Python's re lets "$" match before a final "\n"; the contract's validator keeps ECMA-262 meaning.
    doc = {"id": "abc\n", "cmd": "clear"}
    assert not _node_verdict(doc)[0]
    assert not _schema_accepts(doc)
    plain = Draft202012Validator(contract.schemas()["cmd_clear"])
    assert plain.is_valid(doc)  # what a plain jsonschema validator would have wrongly accepted


# --- (e) validate_message

_STATE = {"level": 100, "reason": "photocell:no-time", "mode": "hybrid", "override": {"level": 30, "until": None},
          "faults": ["lamp_failure", "relay_stuck"], "time_valid": False, "time_source": None, "energy_wh": 0.0,
          "burn_h": 0, "switch_ons": 0, "fw": "0.1.0", "config": "defaults", "safe_mode": False, "t": None}


def test_validate_message_accepts_good_payloads_as_dict_bytes_or_text():
    assert contract.validate_message("state", _STATE) is None
    assert contract.validate_message("state", json.dumps(_STATE).encode()) is None
    assert contract.validate_message("state", json.dumps(_STATE)) is None
    assert contract.validate_message("reply", {"id": "x", "ok": True, "cmd": "get", "state": _STATE}) is None
    assert contract.validate_message("status", {"online": False}) is None


@pytest.mark.parametrize("kind,payload,path", [
    ("state", dict(_STATE, level=101), ["level"]),
    ("state", dict(_STATE, reason="program:"), ["reason"]),
    ("state", dict(_STATE, faults=["supply_loss"]), ["faults", 0]),
    ("state", dict(_STATE, override={"level": 30}), ["override"]),
    ("state", {k: v for k, v in _STATE.items() if k != "t"}, []),
    ("status", {"online": True, "fw": "0.1.0", "id": "Bad", "groups": [], "safe_mode": False, "boot_decision_ms": 3},
     ["id"]),
    ("status", {"online": False, "reason": "crash"}, ["reason"]),
    ("event", {"kind": "alarm", "name": "lamp_failure", "active": 1, "detail": None, "seq": 1, "t": None},
     ["active"]),
    ("event", {"kind": "override_end", "seq": 0, "t": None}, ["seq"]),
    ("reply", {"id": "x", "ok": True, "cmd": "set", "level": 40}, []),
    ("reply", {"id": "x", "ok": False, "error": ""}, ["error"]),
    ("reply", {"id": "x", "ok": True, "cmd": "time", "delta_s": 1, "extra": 2}, []),
    ("cmd", {"id": "x", "cmd": "set", "level": 40, "duration_s": 0}, ["duration_s"]),
])
def test_validate_message_names_the_path(kind, payload, path):
    with pytest.raises(ValidationError) as e:
        contract.validate_message(kind, payload)
    assert list(e.value.absolute_path) == path
    where = "/".join(str(x) for x in path) or "(root)"
    assert e.value.message.startswith(contract.schema_for(kind, payload) + ": " + where + ": ")


def test_validate_message_refuses_unknown_kinds_and_bad_json():
    with pytest.raises(ValidationError):
        contract.validate_message("event", {"kind": "party", "seq": 1, "t": None})
    with pytest.raises(ValidationError):
        contract.validate_message("reply", {"id": "x", "ok": True, "cmd": "dance"})
    with pytest.raises(ValidationError):
        contract.validate_message("tele", b"{not json")
    with pytest.raises(ValueError):
        contract.validate_message("gossip", {})


def test_get_config_reply_accepts_the_nodes_redacted_config_only():
    cfg = configmod.defaults()
    cfg["security"]["node_key"] = "k" * 32
    cfg["mqtt"]["tls"] = {"ca": "QUJD", "server_hostname": None, "client_cert": None, "client_key": "S0VZ"}
    red = configmod.redact(cfg)
    assert red["security"]["node_key"] == "***"
    assert contract.validate_message("reply", {"id": "c", "ok": True, "cmd": "get", "config": red}) is None
    del red["report"]["telemetry_s"]  # the node always sends the whole normalised config
    with pytest.raises(ValidationError):
        contract.validate_message("reply", {"id": "c", "ok": True, "cmd": "get", "config": red})


def test_topic_kind():
    tk = contract.topic_kind
    assert tk("city/lights/pdg-1/state") == "state"
    assert tk(b"city/lights/pdg-1/reply") == "reply"
    assert tk("city/lights/group/zone-3/cmd") == "cmd"
    assert tk("city/lights/all/cmd") == "cmd"
    assert tk("padang/pju/n-1/tele", "padang/pju") == "tele"
    assert tk("city/lights/group/state") is None
    assert tk("city/lights/pdg-1/ota") == "ota"  # binary chunks: no JSON schema
    assert tk("city/lights/pdg-1/other") is None
    assert tk("elsewhere/pdg-1/state") is None


# --- AsyncAPI


def _asyncapi():
    with open(os.path.join(API, "asyncapi.yaml")) as f:
        return json.load(f)  # written as JSON, which is YAML 1.2


def _pointer(doc, ref):
    node = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _refs(node):
    if isinstance(node, dict):
        if "$ref" in node:
            yield node["$ref"]
        for v in node.values():
            yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


def test_asyncapi_refs_resolve():
    doc = _asyncapi()
    assert doc["asyncapi"] == "3.0.0"
    refs = list(_refs(doc))
    files = set()
    for ref in refs:
        if ref.startswith("#/"):
            _pointer(doc, ref)  # KeyError when dangling
        else:
            path = os.path.normpath(os.path.join(API, ref))
            assert os.path.isfile(path), ref
            files.add(os.path.basename(path))
    # every message schema is published through some message (the union and the config are for reference)
    expected = {os.path.basename(p) for p in _schema_files()} - {"command.json", "config.json"}
    assert files == expected


def test_asyncapi_every_channel_has_an_operation_with_its_bindings():
    doc = _asyncapi()
    ops = doc["operations"]
    used = {}
    for name, op in ops.items():
        ch = op["channel"]["$ref"].split("/")[-1]
        used[ch] = op
        for m in op["messages"]:
            assert m["$ref"].startswith("#/channels/%s/messages/" % ch), (name, m)
        assert op["action"] in ("send", "receive")
    assert set(used) == set(doc["channels"])
    b = {ch: used[ch]["bindings"]["mqtt"] for ch in used}
    assert b["status"]["retain"] and b["state"]["retain"]
    assert b["event"]["qos"] == 1 and not b["event"]["retain"]
    assert not b["tele"]["retain"] and not b["reply"]["retain"]
    for ch in ("cmd", "groupCmd", "allCmd"):
        assert used[ch]["action"] == "receive" and used[ch]["reply"]["channel"]["$ref"] == "#/channels/reply"
    assert set(doc["servers"]) == {"production", "local"}
    for ch in doc["channels"].values():
        for p in re.findall(r"{(\w+)}", ch["address"]):
            assert p in ch["parameters"], ch["address"]


# --- rules that live in the owning modules' to_json_schema() (no stop-gaps left in tools/contract.py)


def test_reserved_node_ids_and_the_default_program_are_refused_by_schema_and_node():
    for doc in ({"id": "x", "cmd": "config", "set": {"node": {"id": "group"}}},
                {"id": "x", "cmd": "config", "set": {"node": {"id": "all"}}},
                {"id": "x", "cmd": "program", "programs": {"night": [{"at": "sunset", "level": 100}]}},
                {"id": "x", "cmd": "config", "set": {"programs": {"night": [{"at": "sunset", "level": 100}]}}}):
        assert not _node_verdict(doc)[0], doc
        assert not _schema_accepts(doc), doc
    cfg = configmod.defaults()
    cfg["node"]["id"] = "all"
    with pytest.raises(ValidationError):
        contract.validate_message("reply", {"id": "c", "ok": True, "cmd": "get", "config": configmod.redact(cfg)})


def test_date_pattern_knows_the_length_of_every_month():
    prog = {"default": [{"at": "sunset", "level": 100}]}
    disagreements = []
    for y in (2000, 2025, 2026, 2028, 2099, 2100):
        for m in range(0, 14):
            for d in range(0, 33):
                for date, key in (("%04d-%02d-%02d" % (y, m, d), "from"), ("%02d-%02d" % (m, d), "dates")):
                    entry = {"program": "default", key: date if key == "from" else [date]}
                    doc = {"id": "x", "cmd": "program", "programs": prog, "calendar": [entry]}
                    if _node_verdict(doc)[0] != _schema_accepts(doc):
                        disagreements.append(date)
    # Only Feb 29 of a year that is no leap year needs the node's arithmetic.
    assert sorted(set(disagreements)) == ["2025-02-29", "2026-02-29", "2099-02-29"]


def test_config_patch_schema_comes_from_the_command_itself():
    set_schema = COMMANDS["config"].to_json_schema()["properties"]["set"]
    sections = {k for k, f in configmod.SCHEMA.fields.items() if f.json_type == "object"}
    assert set(set_schema["properties"]) == sections and "calendar" not in sections
    assert set_schema["additionalProperties"] is False
    assert "required" not in set_schema["properties"]["report"]  # partial: objects merge key by key


# --- messages of the node's own code (not only hand-written examples) match the schemas


def test_error_replies_are_cut_to_256_characters_and_still_valid():
    from firmware.commands import error_reply

    r = error_reply("x", "set", "level: " + "z" * 1000)
    assert len(r["error"]) == 256 and r["error"].endswith("...")
    assert contract.validate_message("reply", r) is None
    with pytest.raises(ValidationError):
        contract.validate_message("reply", dict(r, error="e" * 257))


def _ota_agent(tmp_path):
    from firmware import ota
    from firmware.signing import hmac_sha256

    cfg = {"update_key": "00112233445566778899aabbccddeeff", "confirm_s": 10, "trial_max_s": 600,
           "max_bytes": 1048576}
    return ota.OtaAgent(str(tmp_path), cfg, cfg["update_key"], hmac_sha256)


def test_the_ota_agents_replies_and_events_match_the_schemas(tmp_path):
    import hashlib
    import struct

    from firmware import ota
    from firmware.signing import hmac_sha256, key_bytes

    files = [("firmware/__init__.py", b""), ("firmware/version.py", b'VERSION = "0.2.0"\n'),
             ("firmware/big.py", b"x = 1\n" * 1500)]
    m = {"format": 1, "version": "0.2.0", "files": [
        {"path": p, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()} for p, d in files]}
    a = _ota_agent(tmp_path)
    sig = ota.sign_manifest(m, key_bytes("00112233445566778899aabbccddeeff"), hmac_sha256)
    seen = []

    def reply(r, cmd_id="op"):
        if cmd_id is not None and r["cmd"] != "ota_chunk":
            r["id"] = cmd_id  # what the node does for a command (chunk acks keep "ota")
        contract.validate_message("reply", r)
        seen.append(contract.schema_for("reply", r))
        return r

    reply(a.status())
    reply(a.commit())  # nothing staged
    reply(a.chunk(b"\x01\x00"))  # shorter than the header
    reply(a.chunk(struct.pack(ota.CHUNK_HEADER, 1, 1, 7, 0) + b"x"))  # no transfer
    reply(a.begin(m, "0" * 64))  # bad signature
    b = reply(a.begin(m, sig))
    assert b["ok"] and b["file"] == 1  # the empty file needs no chunk
    reply(a.begin(m, sig))  # resumed
    reply(a.status())
    reply(a.commit())  # incomplete: the position comes with the refusal
    reply(a.chunk(struct.pack(ota.CHUNK_HEADER, 1, 2, b["session"], 0) + b"x"))  # out of order
    reply(a.chunk(struct.pack(ota.CHUNK_HEADER, 2, 1, b["session"], 0) + b"x"))  # unknown format
    for idx, (path, data) in enumerate(files):
        for off in range(0, len(data), 4096):
            r = reply(a.chunk(struct.pack(ota.CHUNK_HEADER, 1, idx, b["session"], off) + data[off:off + 4096]))
            assert r["ok"], r
    assert r["complete"]
    reply(a.chunk(struct.pack(ota.CHUNK_HEADER, 1, 3, b["session"], 0) + b"x"))  # after the end
    c = reply(a.commit())
    assert c["ok"] and c["restart"] is True
    # The trial boot: confirmed, then reported once as an event; and a rollback of the next one.
    a2 = _ota_agent(tmp_path)
    reply(a2.status())
    assert a2.confirm_if_due(True, 60)
    for ev in (a2.pending_report(),):
        ev.update({"seq": 1, "t": None})
        contract.validate_message("event", ev)
        seen.append(contract.schema_for("event", ev))
    reply(a2.status())
    reply(a2.abort())
    a2.doc["trial"] = True
    a2.roll_back("not confirmed within 600 s (broker not reached)")
    assert a2.pending_report() is None  # reported by the run after the reset
    ev = dict(_ota_agent(tmp_path).pending_report(), seq=2, t=1773489600)
    contract.validate_message("event", ev)
    seen.append(contract.schema_for("event", ev))
    reply(a2.status())
    assert set(seen) == {"reply_ota_status", "reply_ota_begin", "reply_ota_commit", "reply_ota_abort",
                         "reply_ota_chunk", "reply_error", "event_ota_confirmed", "event_ota_rollback"}


def test_chunk_header_in_asyncapi_matches_the_struct():
    import struct

    from firmware import ota

    msg = _asyncapi()["components"]["messages"]["otaChunk"]
    assert msg["contentType"] == "application/octet-stream"
    fields = msg["payload"]["x-header"]
    values = {"format": 1, "file": 3, "session": 0xBEEF, "offset": 123456}
    packed = struct.pack(ota.CHUNK_HEADER, *(values[f["name"]] for f in fields))
    for f in fields:
        width = int(f["type"][4:]) // 8
        assert int.from_bytes(packed[f["offset"]:f["offset"] + width], "big") == values[f["name"]], f
    assert msg["payload"]["x-data"] == {"offset": ota.HEADER_LEN, "minLength": 1, "maxLength": ota.MAX_CHUNK}


# --- host_tests/contract_check.py: the checker the end-to-end tests run after every test


class _FakeClient:
    def __init__(self):
        self.sent = []
        self.on_message = None

    def publish(self, topic, payload=None, qos=0, retain=False):
        self.sent.append((topic, payload))


class _FakeOperator:
    """What contract_check needs of an Operator: prefix, client (publish, on_message), cond, close()."""

    def __init__(self):
        import threading

        self.prefix = "city/lights"
        self.client = _FakeClient()
        self.client.on_message = self._on_message
        self.cond = threading.Condition()
        self.got = []
        self.closed = False

    def _on_message(self, client, userdata, msg):
        self.got.append(msg.topic)  # a subclass may route a message anywhere (tools/ota.py: chunk acks)

    def deliver(self, topic, payload, retain=False):
        import types

        self.client.on_message(self.client, None, types.SimpleNamespace(topic=topic, payload=payload, retain=retain))

    def close(self):
        self.closed = True


def test_contract_check_flags_bad_node_messages_and_skips_what_the_test_published(monkeypatch):
    import contract_check

    # A registry of its own: the session's Operators and counts stay untouched.
    for name, empty in (("_operators", []), ("_published", set()), ("counts", {}),
                        ("skipped", {"test_published": 0, "opted_out": 0})):
        monkeypatch.setattr(contract_check, name, empty)
    op = _FakeOperator()
    contract_check.register(op)
    birth = {"online": True, "fw": "0.1.0", "id": "n1", "groups": [], "safe_mode": False, "boot_decision_ms": 4}
    op.client.publish("city/lights/fake/state", json.dumps({"level": 5}), retain=True)  # the test's own fake
    for msg in [("city/lights/n1/status", json.dumps(birth).encode(), True),
                ("city/lights/fake/state", b'{"level": 5}', True),
                ("city/lights/n1/cmd", b"garbage", False),
                ("city/lights/n1/tele", b'{"t": null}', False),
                ("city/lights/n1/reply", b"not json", False),
                ("city/lights/n1/reply", b'{"id": "ota", "ok": true, "cmd": "ota_chunk", "session": 1, "file": 0, '
                                         b'"offset": 4096, "complete": false}', False)]:
        op.deliver(*msg)
    assert len(op.got) == 6  # the Operator's own handler still gets every message
    assert op.client.sent == [("city/lights/fake/state", '{"level": 5}')]
    problems = contract_check.check_new()
    assert len(problems) == 2, problems
    assert problems[0].startswith("city/lights/n1/tele: tele: (root): ") and "schema path" in problems[0]
    assert "payload: {\"t\": null}" in problems[0]
    assert "not JSON" in problems[1]
    assert contract_check.check_new() == []  # each message is judged once
    op.deliver("city/lights/n1/tele", b"{}")
    assert contract_check.check_new(enabled=False) == []  # a module that opted out
    op.close()
    assert op.closed
    contract_check.check_new()
    assert op not in contract_check._operators  # closed and checked: forgotten
    assert "2 message(s)" in contract_check.report(problems)
    assert contract_check.counts == {"status_online": 1, "tele": 1, "reply_error": 1, "reply_ota_chunk": 1}
    assert contract_check.skipped == {"test_published": 1, "opted_out": 1}


def test_redact_hides_every_secret_and_leaves_the_config_unchanged():
    cfg = configmod.defaults()
    cfg["mqtt"]["password"] = "pw"
    cfg["security"]["group_key"] = "g" * 32
    cfg["hw"]["wifi"]["password"] = "wifi-pw"
    cfg["mqtt"]["tls"] = {"ca": "QUJD", "server_hostname": None, "client_cert": None, "client_key": "S0VZ"}
    before = json.dumps(cfg, sort_keys=True)
    red = configmod.redact(cfg)
    assert json.dumps(cfg, sort_keys=True) == before
    assert (red["mqtt"]["password"], red["security"]["group_key"], red["hw"]["wifi"]["password"],
            red["mqtt"]["tls"]["client_key"]) == ("***", "***", "***", "***")
    assert red["security"]["node_key"] is None and red["ota"]["update_key"] is None  # unset stays null
    assert red["mqtt"]["tls"]["ca"] == "QUJD"  # not a secret
    cfg["mqtt"]["tls"] = None  # a path that ends early is no error
    assert configmod.redact(cfg)["mqtt"]["tls"] is None
