# runtimes: cpython micropython
"""mqtt_link.Link's decisions with a fake client and poller: backoff, failover, keepalive, dead links, QoS 1 retry,
the offline queue. Time is an argument; nothing sleeps. The real socket path is covered end to end."""

import json

from firmware.mqtt_link import SCHEMA, Link


class FakeSock:
    closed = False

    def close(self):
        self.closed = True


class FakeClient:
    def __init__(self, world, host, port):
        self.world = world
        self.host = host
        self.port = port
        self.sock = FakeSock()
        self.published = []
        self.pings = 0
        self.subscribed = []

    def set_last_will(self, topic, msg, retain, qos):
        self.will = (topic, msg, retain, qos)

    def connect(self):
        if self.port in self.world.refuse:
            raise OSError("ECONNREFUSED")

    def subscribe(self, topic, qos):
        self.subscribed.append(topic)

    def publish(self, topic, msg, retain=False, qos=0, dup=False, pid=0):
        if self.world.broken:
            raise OSError("EPIPE")
        if qos and not pid:
            self.world.pid += 1
            pid = self.world.pid
        self.published.append((topic, msg, retain, qos, dup, pid))
        return pid

    def publish_json(self, topic, doc, retain=False):
        msg = json.dumps(doc).encode()
        self.publish(topic, msg, retain)
        return len(msg)

    def ping(self):
        self.pings += 1

    def wait_msg(self):
        handler = self.world.incoming.pop(0)
        handler()

    def disconnect(self):
        pass


class FakePoller:
    def __init__(self, world):
        self.world = world

    def register(self, sock, mask):
        pass

    def unregister(self, sock):
        pass

    def poll(self, timeout):
        # Another socket (NTP) is always "readable" on this poller: the link must only react to its own.
        other = (FakeSock(), 1)
        if self.world.incoming and self.world.clients:
            return [other, (self.world.clients[-1].sock, 1)]
        return [other]


class Receiver:
    def __init__(self):
        self.connects = 0
        self.messages = []

    def on_connect(self):
        self.connects += 1

    def on_message(self, topic, msg, retained):
        self.messages.append((topic, msg, retained))

    def on_oversize(self, topic, size):
        pass


class World:
    def __init__(self, **cfg):
        self.refuse = set()
        self.broken = False
        self.incoming = []
        self.pid = 0
        self.clients = []
        self.cfg = SCHEMA.check(cfg)
        self.receiver = Receiver()
        self.link = Link(self.cfg, "n1", b"p/n1/status", b"{}", [b"p/n1/cmd"], self.receiver, self.rand,
                         FakePoller(self), client_factory=self.factory)
        self.rand_calls = []

    def rand(self, n):
        self.rand_calls.append(n)
        return n - 1  # the longest wait jitter allows: tests check the upper bound

    def factory(self, link, host, port):
        c = FakeClient(self, host, port)
        self.clients.append(c)
        return c


def test_connects_subscribes_and_sets_the_will():
    w = World()
    w.link.service(0)
    assert w.link.connected and w.receiver.connects == 1
    c = w.clients[0]
    assert c.subscribed == [b"p/n1/cmd"] and c.will == (b"p/n1/status", b"{}", True, 1)


def test_backoff_doubles_with_jitter_up_to_the_cap_and_rotates_brokers():
    w = World(brokers=[{"host": "a", "port": 1}, {"host": "b", "port": 2}], backoff_min_s=1, backoff_max_s=8)
    w.refuse = {1, 2}
    now = 0
    waits = []
    for _ in range(6):
        w.link.service(now)
        wait = w.link.next_due_ms(now)
        waits.append(wait)
        now += wait
    # equal jitter: between half and all of the backoff, which doubles to the cap (rand here returns the maximum)
    assert waits == [1000, 2000, 4000, 8000, 8000, 8000]
    assert [c.port for c in w.clients] == [1, 2, 1, 2, 1, 2]
    assert w.link.failures == 6 and "ECONNREFUSED" in w.link.last_error
    w.refuse = set()
    w.link.service(now)
    assert w.link.connected and w.link.connects == 1


def test_keepalive_pings_when_quiet_and_drops_a_silent_link():
    w = World(keepalive_s=20)
    w.link.service(0)
    c = w.clients[0]
    w.link.service(9999)
    assert c.pings == 0  # not yet quiet for half the keepalive
    assert w.link.next_due_ms(9999) == 1  # and the loop is told to come back exactly then, not before
    w.link.service(10000)
    assert c.pings == 1
    w.link.service(14999)
    assert c.pings == 1  # at most one ping per quarter keepalive
    w.link.service(15000)
    assert c.pings == 2
    w.link.service(29999)
    assert w.link.connected
    w.link.service(30000)  # 1.5 x keepalive without a single byte received: half-open link
    assert not w.link.connected and w.link.drops == 1 and "keepalive" in w.link.last_error


def test_incoming_traffic_keeps_the_link_alive():
    w = World(keepalive_s=20)
    w.link.service(0)
    for t in range(5000, 100000, 5000):
        w.incoming.append(lambda: w.link.on_message(b"p/n1/cmd", b"x", 0))
        w.link.service(t)
    assert w.link.connected and len(w.receiver.messages) == 19


def test_qos1_event_retried_with_dup_then_link_dropped_and_resent_after_reconnect():
    w = World(ack_timeout_s=2, ack_tries=3)
    w.link.service(0)
    w.link.send_event(b"p/n1/event", b"e1")
    w.link.service(0)
    c = w.clients[0]
    assert c.published[-1][:5] == (b"p/n1/event", b"e1", False, 1, False)
    pid = c.published[-1][5]
    w.link.service(2000)
    w.link.service(4000)
    assert [p[4] for p in c.published] == [False, True, True] and {p[5] for p in c.published} == {pid}
    w.link.service(6000)
    assert not w.link.connected and "PUBACK" in w.link.last_error
    assert w.link.queued() == 1  # kept for the next connection
    w.link.service(6000 + w.link.next_due_ms(6000))
    w.link.service(7000)
    c2 = w.clients[1]
    assert c2.published[-1][:2] == (b"p/n1/event", b"e1")
    w.link.on_puback(c2.published[-1][5])
    assert w.link.queued() == 0 and w.link.acked_events == 1


def test_offline_queue_drops_the_oldest_and_counts():
    w = World(queue_len=3)
    for i in range(5):
        w.link.send_event(b"t", b"e%d" % i)
    assert w.link.queued() == 3 and w.link.dropped_events == 2
    w.link.service(0)
    w.link.service(0)
    assert w.clients[0].published[0][1] == b"e2"  # the oldest kept, in order


def test_events_go_one_at_a_time_in_order():
    w = World()
    w.link.service(0)
    for i in range(3):
        w.link.send_event(b"t", b"e%d" % i)
    sent = []
    for t in range(3):
        w.link.service(t)
        last = w.clients[0].published[-1]
        sent.append(last[1])
        w.link.on_puback(last[5])
    assert sent == [b"e0", b"e1", b"e2"]


def test_publish_while_offline_is_refused_not_queued():
    w = World()
    assert w.link.publish(b"t", b"state") is False
    w.link.service(0)
    assert w.link.publish(b"t", b"state") is True
    w.broken = True
    assert w.link.publish(b"t", b"state") is False and not w.link.connected
