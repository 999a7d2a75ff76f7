"""Keeps one MQTT connection usable for years: keepalive, dead-link detection, reconnect, QoS 1 events, offline queue.

Design (after mqtt_as): the protocol on a good connection lives in umqtt_hardened; this module decides what to do
when the connection is not good. Nothing here blocks for long:

- The node loop calls `wait(timeout_ms)` (select.poll on the socket, or a plain wait while offline) and then
  `service(now_ms)`. Time is the real monotonic clock, passed in — never the (possibly accelerated) wall clock.
- Keepalive: we send PINGREQ ourselves (umqtt never does) when nothing was received or sent for half the keepalive,
  and declare the link dead when nothing at all arrived for 1.5 × keepalive — which catches a half-open TCP link
  that would otherwise look healthy forever.
- Reconnect: exponential backoff with equal jitter (half fixed, half random) up to a cap, so ten thousand nodes
  coming back after a broker restart do not all knock at once. Each failure moves on to the next broker in the list.
  The one blocking step is the TCP connect + CONNACK, bounded by `io_timeout_s`.
- Events and alarms (QoS 1) go through a bounded queue; when it is full the oldest is dropped and counted. One event
  is in flight at a time, so they arrive in order; a missing PUBACK is retried with DUP, then the link is dropped and
  the event is sent again on the next connection. State and telemetry are QoS 0 and not queued: the node republishes
  its *current* state after every connect (coalesced, never a backlog of stale values).
"""

from firmware.compat import const, ticks_add, ticks_diff
from firmware.schema import Dict, Int, Lazy, List, Nullable, Str

_MAX_PACKETS_PER_SERVICE = const(32)  # bound the time one service() call spends reading a burst


def _broker():
    return Dict({
        "host": Str(253, minlen=1, doc="broker host name or address"),
        "port": Int(1, 65535, 1883),
    })


def _tls():
    return Dict({
        "ca": Str(8192, minlen=1, doc="CA certificate, base64 of the DER bytes"),
        "server_hostname": Nullable(Str(253), doc="name the certificate must carry; default: the broker host"),
        "client_cert": Nullable(Str(8192), doc="optional client certificate, base64 DER"),
        "client_key": Nullable(Str(8192), doc="optional client key, base64 DER"),
    })


def _schema():
    return Dict({
        "brokers": List(_broker(), 4, [{"host": "127.0.0.1", "port": 1883}], min_len=1,
                        doc="tried in turn: the next one after each failure"),
        "prefix": Str(64, "city/lights", minlen=1, charset="abcdefghijklmnopqrstuvwxyz0123456789_-/",
                      doc="topic prefix; the node's topics are <prefix>/<node_id>/..."),
        "keepalive_s": Int(10, 3600, 60),
        "io_timeout_s": Int(1, 30, 5, doc="bound on TCP connect, CONNACK and a partly received packet"),
        "backoff_min_s": Int(1, 600, 1),
        "backoff_max_s": Int(1, 3600, 120),
        "ack_timeout_s": Int(1, 120, 10, doc="PUBACK wait before a retry with DUP"),
        "ack_tries": Int(1, 10, 3),
        "queue_len": Int(1, 256, 32, doc="events kept while offline; the oldest is dropped beyond this"),
        "max_payload": Int(256, 65536, 8192, doc="incoming messages larger than this are discarded unread"),
        "user": Nullable(Str(64)),
        "password": Nullable(Str(128)),
        "tls": Nullable(_tls()),
    }, check=lambda v, p: _check(v, p))


SCHEMA = Lazy(_schema)


def _check(cfg, path):
    from firmware.schema import Invalid

    if cfg["backoff_min_s"] > cfg["backoff_max_s"]:
        raise Invalid(path + ".backoff_min_s" if path else "backoff_min_s", "must be <= backoff_max_s")
    if cfg["prefix"].startswith("/") or cfg["prefix"].endswith("/") or "//" in cfg["prefix"]:
        raise Invalid(path + ".prefix" if path else "prefix", "no leading, trailing or double '/'")


def default_client_factory(link, host, port):
    from firmware.umqtt_hardened import HardenedClient

    cfg = link.cfg
    if link.buffers is None:
        from firmware.umqtt_hardened import Buffers

        link.buffers = Buffers(cfg["max_payload"])  # once: every later connection reuses them
    return HardenedClient(link.client_id, host, port, cfg["user"], cfg["password"], cfg["keepalive_s"],
                          link.ssl_params, link, cfg["max_payload"], cfg["io_timeout_s"], link.buffers)


def _connect_errors():
    # umqtt raises its own MQTTException for a refused CONNECT (bad credentials, ...); a short read shows up as an
    # IndexError or TypeError inside umqtt. All mean: this attempt failed, try again later. A MemoryError inside the
    # protocol (a packet that could not be allocated halfway through a read or a write) leaves the byte stream at an
    # unknown point: the same cure, a fresh connection. (The node refuses commands it cannot afford itself, before
    # anything escapes to here: firmware/node.py on_message.)
    # umqtt is reached through umqtt_hardened, never directly: its umqtt_shims must install the socket stand-in before
    # umqtt.simple is first imported (else TCP_NODELAY and the connect timeout are silently lost).
    try:
        from firmware.umqtt_hardened import MQTTException
    except ImportError:  # CPython unit tests run the link with a fake client and no umqtt
        return (OSError, IndexError, TypeError, ValueError, MemoryError)
    return (OSError, IndexError, TypeError, ValueError, MemoryError, MQTTException)


class Link:
    """One logical MQTT connection. `receiver` gets on_connect(), on_message(topic, msg, retained) and
    on_oversize(topic, size). `rand(n)` returns an int in [0, n) (injected so tests are deterministic)."""

    def __init__(self, cfg, client_id, will_topic, will_msg, subscriptions, receiver, rand, poller,
                 ssl_params=None, client_factory=default_client_factory):
        self.cfg = cfg
        self.client_id = client_id
        self.will_topic = will_topic
        self.will_msg = will_msg
        self.subscriptions = subscriptions
        self.receiver = receiver
        self.rand = rand
        self.poller = poller
        self.ssl_params = ssl_params
        self.client_factory = client_factory
        self.client = None
        self.buffers = None  # the client's I/O buffers (default_client_factory), kept across reconnects
        self.connected = False
        self._broker = 0
        self._backoff_ms = cfg["backoff_min_s"] * 1000
        self._next_attempt = None  # ticks; None = at once
        self._last_rx = 0
        self._last_tx = 0
        self._last_ping = 0
        self._now_hint = 0
        self._queue = []  # [(topic, payload)], oldest first; head is in flight when _inflight_pid
        self._inflight_pid = 0
        self._inflight_sent = 0
        self._inflight_tries = 0
        self._goodbye_pid = 0  # packet id of the goodbye status until its PUBACK (close)
        self._closing = False
        self._errors = _connect_errors()
        # Counters for state/telemetry and the benchmarks.
        self.connects = 0
        self.failures = 0
        self.drops = 0
        self.dropped_events = 0
        self.acked_events = 0
        self.oversize = 0
        self.tx_bytes = 0
        self.rx_bytes = 0
        self.last_error = ""

    # --- what the node calls -------------------------------------------------------------------------------------

    def wait(self, timeout_ms):
        """Block until the socket is readable or timeout_ms passed (the only place the node sleeps)."""
        self.poller.poll(timeout_ms if timeout_ms > 0 else 0)

    def service(self, now_ms):
        self._now_hint = now_ms  # publish() has no time argument; it stamps _last_tx with the latest service time
        if not self.connected:
            if self._next_attempt is None or ticks_diff(now_ms, self._next_attempt) >= 0:
                self._connect(now_ms)
            return
        try:
            n = 0
            while n < _MAX_PACKETS_PER_SERVICE and self._readable():
                self.client.wait_msg()
                self._last_rx = now_ms
                n += 1
            self._keepalive(now_ms)
            self._pump(now_ms)
        except self._errors as e:
            self._drop(now_ms, e)

    def publish(self, topic, payload, retain=False):
        """QoS 0, best effort. Returns False when offline (the caller keeps its state and republishes later)."""
        return self._publish(topic, payload, retain, False)

    def publish_json(self, topic, doc, retain=False):
        """publish() for a JSON document, written into the socket in pieces (no copy of the whole text in RAM)."""
        return self._publish(topic, doc, retain, True)

    def _publish(self, topic, body, retain, as_json):
        if not self.connected:
            return False
        try:
            if as_json:
                n = self.client.publish_json(topic, body, retain)
            else:
                self.client.publish(topic, body, retain)
                n = len(body)
        except self._errors as e:
            self._drop(None, e)
            return False
        self.tx_bytes += len(topic) + n + 4
        self._last_tx = self._now_hint
        return True

    def send_event(self, topic, payload):
        """QoS 1 through the ordered offline queue; never blocks. Returns False when an old event had to go."""
        dropped = False
        if len(self._queue) >= self.cfg["queue_len"]:
            # Drop the oldest event that is not in flight, so a late PUBACK never acknowledges the wrong one.
            if self._inflight_pid and len(self._queue) > 1:
                self._queue.pop(1)
            else:
                self._queue.pop(0)
                self._inflight_pid = 0
            self.dropped_events += 1
            dropped = True
        self._queue.append((topic, payload))
        return not dropped

    def queued(self):
        return len(self._queue)

    def next_due_ms(self, now_ms):
        """Milliseconds until the link needs service() again (for the node's poll timeout)."""
        if not self.connected:
            if self._next_attempt is None:
                return 0
            return max(0, ticks_diff(self._next_attempt, now_ms))
        ka = self.cfg["keepalive_s"] * 1000
        # The next ping is due when the link has been quiet for half the keepalive (and not pinged for a quarter):
        # exactly the rule _keepalive applies, so the loop never wakes early to find nothing to do.
        quiet_in = min(ka // 2 - ticks_diff(now_ms, self._last_rx), ka // 2 - ticks_diff(now_ms, self._last_tx))
        due = max(ka // 4 - ticks_diff(now_ms, self._last_ping), quiet_in)
        due = min(due, ka * 3 // 2 - ticks_diff(now_ms, self._last_rx))
        if self._inflight_pid:
            due = min(due, self.cfg["ack_timeout_s"] * 1000 - ticks_diff(now_ms, self._inflight_sent))
        elif self._queue:
            due = 0
        return max(0, due)

    def close(self, goodbye_topic=None, goodbye=None):
        """Orderly end. `goodbye` (the node's "offline, reason ..." status) goes retained with QoS 1 first, and
        only once the broker has acknowledged it do we send DISCONNECT (after which the broker drops our Last
        Will). Without the PUBACK within io_timeout_s the socket is just closed: the broker then publishes the Last
        Will, offline too. Either way the retained status ends offline, never a stale "online". Messages that
        arrive meanwhile are not acted on: the node is on its way to a restart."""
        if self.connected and goodbye is not None:
            self._closing = True
            try:
                self._goodbye_pid = self.client.publish(goodbye_topic, goodbye, True, 1)
                self._await_goodbye()
            except self._errors:
                pass
            acked = self._goodbye_pid == 0
            self._closing = False
            if not acked:
                self._teardown()  # no DISCONNECT: the broker's Last Will tells the rest
                return
        if self.connected:
            try:
                self.client.disconnect()
            except self._errors:
                pass
        self._teardown()

    def _await_goodbye(self):
        # Bounded twice: each wait by io_timeout_s, and the number of packets read (a busy broker cannot hold the
        # restart for long). The poller is shared with the NTP socket: a wake-up for it just counts as a round.
        wait_ms = self.cfg["io_timeout_s"] * 1000
        for _ in range(_MAX_PACKETS_PER_SERVICE):
            if not self._readable_within(wait_ms):
                return
            self.client.wait_msg()
            if self._goodbye_pid == 0:
                return

    # --- umqtt_hardened calls these ------------------------------------------------------------------------------

    def on_message(self, topic, msg, retained):
        self.rx_bytes += len(topic) + len(msg) + 4
        if not self._closing:
            self.receiver.on_message(topic, msg, retained)

    def on_oversize(self, topic, size):
        self.oversize += 1
        self.rx_bytes += size
        self.receiver.on_oversize(topic, size)

    def on_puback(self, pid):
        if self._goodbye_pid and pid == self._goodbye_pid:
            self._goodbye_pid = 0
            return
        if self._inflight_pid and pid == self._inflight_pid:
            self._queue.pop(0)
            self._inflight_pid = 0
            self.acked_events += 1

    def on_pingresp(self):
        pass  # receiving anything already refreshed _last_rx

    # --- inside ------------------------------------------------------------------------------------------------

    def _readable(self):
        return self._readable_within(0)

    def _readable_within(self, timeout_ms):
        # The poller is shared (the NTP socket waits on it too): only our own socket's events count.
        sock = self.client.sock
        for entry in self.poller.poll(timeout_ms):
            if entry[0] is sock and entry[1] & 0x19:  # POLLIN | POLLERR | POLLHUP; a closed socket reads as error
                return True
        return False

    def _keepalive(self, now_ms):
        ka = self.cfg["keepalive_s"] * 1000
        if ticks_diff(now_ms, self._last_rx) >= ka * 3 // 2:
            raise OSError("no traffic for 1.5 x keepalive")
        quiet = ticks_diff(now_ms, self._last_rx) >= ka // 2 or ticks_diff(now_ms, self._last_tx) >= ka // 2
        if quiet and ticks_diff(now_ms, self._last_ping) >= ka // 4:
            self.client.ping()
            self._last_ping = now_ms
            self._last_tx = now_ms
            self.tx_bytes += 2

    def _pump(self, now_ms):
        if not self._queue:
            return
        topic, payload = self._queue[0]
        if self._inflight_pid:
            if ticks_diff(now_ms, self._inflight_sent) < self.cfg["ack_timeout_s"] * 1000:
                return
            if self._inflight_tries >= self.cfg["ack_tries"]:
                raise OSError("no PUBACK after %d tries" % self._inflight_tries)
            self.client.publish(topic, payload, False, 1, True, self._inflight_pid)
            self._inflight_tries += 1
        else:
            self._inflight_pid = self.client.publish(topic, payload, False, 1)
            self._inflight_tries = 1
        self._inflight_sent = now_ms
        self._last_tx = now_ms
        self.tx_bytes += len(topic) + len(payload) + 6

    def _connect(self, now_ms):
        brokers = self.cfg["brokers"]
        b = brokers[self._broker % len(brokers)]
        client = None
        try:
            client = self.client_factory(self, b["host"], b["port"])
            client.set_last_will(self.will_topic, self.will_msg, True, 1)
            client.connect()
            self.client = client
            self.connected = True  # before subscribing: retained messages may arrive (and be answered) meanwhile
            self.poller.register(client.sock, 1)
            self._last_rx = self._last_tx = self._last_ping = now_ms
            self._inflight_pid = 0  # a new clean session: the head event goes again with a fresh id
            for topic in self.subscriptions:
                client.subscribe(topic, 1)
        except self._errors as e:
            self.failures += 1
            self.last_error = ("%s:%d %s" % (b["host"], b["port"], _describe(e)))[:200]
            if self.connected:
                self._teardown()
            elif client is not None and client.sock is not None:
                _close_quietly(client.sock)
            self._broker += 1
            jitter = self.rand(self._backoff_ms // 2 + 1)
            self._next_attempt = ticks_add(now_ms, self._backoff_ms // 2 + jitter)
            self._backoff_ms = min(self._backoff_ms * 2, self.cfg["backoff_max_s"] * 1000)
            return
        self.connects += 1
        self._backoff_ms = self.cfg["backoff_min_s"] * 1000
        self.receiver.on_connect()

    def _drop(self, now_ms, err):
        self.drops += 1
        self.last_error = _describe(err)[:200]
        self._teardown()
        # Reconnect after the minimum backoff (with jitter): the broker was reachable a moment ago.
        if now_ms is None:
            self._next_attempt = None
        else:
            self._next_attempt = ticks_add(now_ms, self.rand(self._backoff_ms + 1))

    def _teardown(self):
        if self.client is not None and self.client.sock is not None:
            try:
                self.poller.unregister(self.client.sock)
            except (OSError, KeyError, ValueError):
                pass
            _close_quietly(self.client.sock)
        self.client = None
        self.connected = False
        self._inflight_pid = 0


def _close_quietly(sock):
    try:
        sock.close()
    except OSError:
        pass


def _describe(err):
    text = str(err)
    return err.__class__.__name__ + (": " + text if text else "")
