"""Every message a node sends during a test is checked against the published contract (docs/api, tools/contract.py).

How: tools/operator_client.py calls its module-level `on_new_operator(op)` from every Operator's constructor;
`install()` points that hook at `register`, which records every message the Operator's client receives (its
on_message wrapped: op.raw would miss the OTA chunk acks that tools/ota.py's Operator routes elsewhere) and every
payload it publishes. After each test, conftest.py calls `check_new()`: what the registered Operators received
since the last call on a node → operator topic (status, state, tele, event, reply) is validated with
tools.contract.validate_message. Not validated: payloads a test-side Operator published itself on those topics
(fake nodes, retained messages deleted with an empty payload) — they are the test's, not the node's — and
everything of a test module that sets `CONTRACT_CHECK = False`.

CPython only (host tests); jsonschema is imported at the first message to check.
"""

import json
import threading

NODE_KINDS = ("status", "state", "tele", "event", "reply")
_MAX_SHOWN = 5  # violations shown per test: the first few say what is wrong
_PAYLOAD_SHOWN = 600

_lock = threading.Lock()
_operators = []  # registered Operators not yet closed and fully checked
_published = set()  # (topic, payload bytes) that test-side Operators published on node → operator topics
_verdicts = {}  # (kind, payload bytes) → None or the violation text: the same retained message is seen many times
counts = {}  # schema stem → deliveries validated in this session
skipped = {"test_published": 0, "opted_out": 0}


def _bytes(payload):
    # What paho sends for a publish() payload: str as UTF-8, numbers as their text, None as nothing.
    if payload is None:
        return b""
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return str(payload).encode("ascii")


def _kind(topic, prefix):
    from tools.contract import topic_kind

    return topic_kind(topic, prefix)


def register(op):
    """on_new_operator: track `op` (called from Operator.__init__ before it connects)."""
    op._contract_seen = []  # (topic, payload bytes, retained) of every message received
    op._contract_cursor = 0
    op._contract_closed = False
    publish = op.client.publish
    on_message = op.client.on_message

    def recording_on_message(client, userdata, msg):
        with op.cond:
            op._contract_seen.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
        on_message(client, userdata, msg)

    def recording_publish(topic, payload=None, *args, **kwargs):
        if _kind(topic, op.prefix) in NODE_KINDS:
            with _lock:
                _published.add((topic, _bytes(payload)))
        return publish(topic, payload, *args, **kwargs)

    close = op.close

    def closing_close():
        close()
        op._contract_closed = True  # after close(): no message can arrive any more

    op.client.publish = recording_publish
    op.client.on_message = recording_on_message
    op.close = closing_close
    with _lock:
        _operators.append(op)


def install():
    """Point operator_client's hook at register(); False when paho (hence Operator) is not available."""
    try:
        import operator_client
    except ImportError:
        return False
    operator_client.on_new_operator = register
    return True


def _verdict(kind, payload):
    """None when `payload` (bytes) is a valid `kind` message, else why not (schema, path, reason)."""
    from jsonschema import ValidationError

    from tools import contract

    key = (kind, payload)
    if key in _verdicts:
        return _verdicts[key]
    try:
        contract.validate_message(kind, payload)
        why = None
    except ValidationError as e:
        schema_path = "/".join(str(x) for x in e.absolute_schema_path) or "(root)"
        why = "%s (schema path %s)" % (e.message, schema_path)
    _verdicts[key] = why
    return why


def _stem(kind, payload):
    from tools import contract

    try:
        doc = json.loads(payload)
    except ValueError:
        doc = None
    return contract.schema_for(kind, doc)


def _new_messages(op):
    """[(topic, payload bytes, retained)] received by `op` since the last call."""
    with op.cond:
        new = op._contract_seen[op._contract_cursor:]
        op._contract_cursor += len(new)
    return new


def check_new(enabled=True):
    """Validate what every registered Operator received since the last call. Returns the violations, one text
    each (topic, retained flag, payload and why); with enabled=False only moves past the messages."""
    with _lock:
        ops = list(_operators)
    problems = []
    for op in ops:
        closed = op._contract_closed
        for topic, payload, retained in _new_messages(op):
            kind = _kind(topic, op.prefix)
            if kind not in NODE_KINDS:
                continue
            if not enabled:
                skipped["opted_out"] += 1
                continue
            if (topic, payload) in _published:
                skipped["test_published"] += 1
                continue
            why = _verdict(kind, payload)
            stem = _stem(kind, payload)
            counts[stem] = counts.get(stem, 0) + 1
            if why is not None:
                text = payload.decode("utf-8", "replace")
                if len(text) > _PAYLOAD_SHOWN:
                    text = text[:_PAYLOAD_SHOWN] + "...(%d characters)" % len(text)
                problems.append("%s%s: %s\n    payload: %s" % (topic, " (retained)" if retained else "", why, text))
        if closed:
            with _lock:
                if op in _operators:
                    _operators.remove(op)
    return problems


def report(problems):
    """The failure message for a list of violations."""
    shown = problems[:_MAX_SHOWN]
    more = len(problems) - len(shown)
    return "%d message(s) from the node break the published contract (docs/api; tools/contract.py):\n  %s%s" % (
        len(problems), "\n  ".join(shown), "\n  ... and %d more" % more if more else "")


def summary():
    """One line per message kind: deliveries validated in this session (for the terminal summary)."""
    by_kind = {}
    for stem, n in counts.items():
        k = stem.split("_")[0]
        by_kind[k] = by_kind.get(k, 0) + n
    total = sum(counts.values())
    lines = ["%d node messages validated against docs/api: %s" % (
        total, ", ".join("%s %d" % (k, by_kind[k]) for k in sorted(by_kind)))]
    lines.append("  by schema: " + ", ".join("%s %d" % (s, counts[s]) for s in sorted(counts)))
    lines.append("  not validated: %d published by the tests themselves, %d in modules with CONTRACT_CHECK = False"
                 % (skipped["test_published"], skipped["opted_out"]))
    return lines
