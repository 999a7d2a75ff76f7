# runtimes: cpython micropython
"""The goodbye before a restart the node chose (mqtt_link.Link.close): retained, QoS 1, and DISCONNECT only once the
broker has acknowledged it; without the PUBACK the link is just dropped so that the broker's Last Will says
offline. Fakes for the client and poller (the real path is in test_e2e_node.py, test_one_birth_per_boot)."""

from firmware.mqtt_link import SCHEMA, Link


class Sock:
    closed = False

    def close(self):
        self.closed = True


class Client:
    def __init__(self, broker):
        self.broker = broker
        self.sock = Sock()
        self.published = []
        self.disconnected = False

    def set_last_will(self, topic, msg, retain, qos):
        pass

    def connect(self):
        pass

    def subscribe(self, topic, qos):
        pass

    def publish(self, topic, msg, retain=False, qos=0, dup=False, pid=0):
        self.published.append((topic, msg, retain, qos))
        if qos:
            self.broker.pending.extend(self.broker.answers)  # what the broker sends back after this publish
            return 7
        return 0

    def wait_msg(self):
        self.broker.pending.pop(0)(self.broker.link)

    def disconnect(self):
        self.disconnected = True


class Poller:
    def __init__(self, broker):
        self.broker = broker
        self.timeouts = []

    def register(self, sock, mask):
        pass

    def unregister(self, sock):
        pass

    def poll(self, timeout):
        self.timeouts.append(timeout)
        if self.broker.pending:
            return [(self.broker.client.sock, 1)]
        return []  # nothing within the timeout


class Receiver:
    def __init__(self):
        self.messages = []

    def on_connect(self):
        pass

    def on_message(self, topic, msg, retained):
        self.messages.append(topic)

    def on_oversize(self, topic, size):
        pass


class Broker:
    def __init__(self, answers):
        self.answers = answers
        self.pending = []
        self.client = None
        self.receiver = Receiver()
        self.poller = Poller(self)
        self.link = Link(SCHEMA.check({"io_timeout_s": 3}), "n1", b"p/n1/status", b'{"online": false}', [],
                         self.receiver, lambda n: 0, self.poller, client_factory=self.factory)
        self.link.service(0)

    def factory(self, link, host, port):
        self.client = Client(self)
        return self.client


def _puback(pid):
    return lambda link: link.on_puback(pid)


def _command(link):
    link.on_message(b"p/n1/cmd", b'{"id": "x", "cmd": "clear"}', False)


def test_goodbye_is_qos1_retained_and_disconnects_once_acknowledged():
    b = Broker([_command, _puback(7)])  # a command arrives before the PUBACK
    client = b.client
    b.link.close(b"p/n1/status", b'{"online": false, "reason": "reboot"}')
    assert client.published == [(b"p/n1/status", b'{"online": false, "reason": "reboot"}', True, 1)]
    assert client.disconnected and client.sock.closed and not b.link.connected
    assert b.receiver.messages == []  # on its way to a restart: not acted on
    assert b.poller.timeouts == [3000, 3000]  # each wait bounded by io_timeout_s


def test_goodbye_without_puback_drops_the_link_so_the_last_will_follows():
    b = Broker([])
    client = b.client
    b.link.close(b"p/n1/status", b'{"online": false, "reason": "config"}')
    assert not client.disconnected  # no DISCONNECT: the broker publishes the Last Will (offline)
    assert client.sock.closed and not b.link.connected


def test_another_ack_does_not_count_as_the_goodbye():
    b = Broker([_puback(3)] * 40)  # acks for other packets only: the wait is bounded by a packet count too
    b.link.close(b"p/n1/status", b'{"online": false, "reason": "ota"}')
    assert not b.client.disconnected and not b.link.connected


def test_close_without_goodbye_disconnects():
    b = Broker([])
    client = b.client
    b.link.close()
    assert client.published == [] and client.disconnected
