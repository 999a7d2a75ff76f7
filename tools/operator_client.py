"""A small paho-mqtt client that speaks the node API: send commands, wait for replies, watch state and events.

Used by the end-to-end tests, the demo and the fleet CLI, so that all three talk to nodes the same way.
"""

import json
import threading
import time
import uuid

import paho.mqtt.client as mqtt

# Test hook: when set, called with every new Operator before it connects (host_tests/contract_check.py sets it to
# validate every message the nodes send during a test). None everywhere else.
on_new_operator = None


class Operator:
    def __init__(self, host, port, prefix="city/lights", client_id=None, user=None, password=None, tls=None,
                 signer=None, clean_session=True):
        self.prefix = prefix
        self.signer = signer  # callable(doc, node_or_group) → doc with "sig", for signed fleets
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "op-" + uuid.uuid4().hex[:8],
                                  protocol=mqtt.MQTTv311, clean_session=clean_session)
        self.client.reconnect_delay_set(0.1, 1)
        if user is not None:
            self.client.username_pw_set(user, password)
        if tls is not None:
            self.client.tls_set(**tls)
        self.cond = threading.Condition()
        self.replies = {}  # id → reply dict
        self.status = {}  # node → birth/LWT dict
        self.state = {}  # node → last state dict
        self.tele = {}  # node → last telemetry dict
        self.events = []  # (node, event dict)
        self.raw = []  # (topic, payload bytes, retained) of every message, for contract checks
        self.connected = threading.Event()
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self._last_sub = None
        if on_new_operator is not None:
            on_new_operator(self)
        self.refused = None  # the broker's reason when it refuses us (bad credentials, ...)
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(10):
            self.client.loop_stop()
            raise RuntimeError("operator could not connect to %s:%d%s" % (
                host, port, ": " + self.refused if self.refused else ""))

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self.refused = str(reason_code)
            return
        client.subscribe(self.prefix + "/+/status", 1)
        client.subscribe(self.prefix + "/+/state", 1)
        client.subscribe(self.prefix + "/+/tele", 0)
        client.subscribe(self.prefix + "/+/event", 1)
        # Connected means subscribed: a command sent before the broker took the reply subscription would have its
        # reply missed (seen on a loaded machine). The SUBACK of the last one says all are in place.
        self._last_sub = client.subscribe(self.prefix + "/+/reply", 1)[1]

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        if mid == self._last_sub:
            self.connected.set()

    def _on_message(self, client, userdata, msg):
        parts = msg.topic[len(self.prefix) + 1:].split("/")
        with self.cond:
            self.raw.append((msg.topic, msg.payload, msg.retain))
            if len(parts) != 2:
                return
            node, kind = parts
            try:
                doc = json.loads(msg.payload)
            except ValueError:
                doc = {"_unparsed": msg.payload}
            if kind == "reply":
                self.replies.setdefault(doc.get("id"), []).append(doc)
            elif kind == "status":
                self.status[node] = doc
            elif kind == "state":
                self.state[node] = doc
            elif kind == "tele":
                self.tele[node] = doc
            elif kind == "event":
                self.events.append((node, doc))
            self.cond.notify_all()

    def wait_for(self, predicate, timeout=10.0):
        """Wait until predicate() (called under the lock) is true; returns its value or raises TimeoutError."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                v = predicate()
                if v:
                    return v
                left = deadline - time.time()
                if left <= 0:
                    raise TimeoutError("condition not met in %.1f s" % timeout)
                self.cond.wait(min(left, 0.5))

    def send(self, node, cmd, topic=None, **fields):
        """Publish a command to a node (or `topic`), return its id. Never retained: a retained command would be
        handed to the node again on every subscribe, and under MQTT 3.1.1 an online node cannot tell the first
        delivery from a live command (docs/OPERATIONS.md, "Retained commands")."""
        doc = {"id": fields.pop("id", None) or uuid.uuid4().hex[:12], "cmd": cmd}
        doc.update(fields)
        if self.signer is not None:
            doc = self.signer(doc, node)
        self.client.publish(topic or "%s/%s/cmd" % (self.prefix, node), json.dumps(doc), qos=1, retain=False)
        return doc["id"]

    def command(self, node, cmd, timeout=10.0, **fields):
        """Send a command and wait for its reply."""
        cid = self.send(node, cmd, **fields)
        return self.wait_for(lambda: self.replies.get(cid, [None])[0], timeout)

    def publish_raw(self, topic, payload, retain=False, qos=1):
        """Publish exact bytes (hostile-input tests, OTA chunks, a node-shaped test publisher). Nothing is ever
        published retained on a command or update topic: ValueError."""
        if retain and (topic.endswith("/cmd") or topic.endswith("/ota")):
            raise ValueError("commands are never published retained (%s)" % topic)
        self.client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(10)

    def clear_retained(self, topic):
        """Delete the broker's retained message on `topic` (MQTT: a retained publish of zero bytes). The broker
        still forwards the empty message to live subscribers: a node answers it "empty payload"."""
        self.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(10)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()
