"""End to end: the MQTT link under stress — broker restarts, absent broker, a stalled link, bursts, huge messages."""

import json
import socket
import threading
import time

from nodekit import node_config
from operator_client import Operator

from broker import Broker


def _counters(op, node="n1"):
    return op.command(node, "get", what="counters", timeout=15)


def _override_ends(op):
    return [e["seq"] for n, e in op.events if e.get("kind") == "override_end"]


def test_broker_restarted_20_times_no_lost_events(any_broker, node_factory):
    """Twenty broker restarts in one run. Before each, an override is set that ends while the broker is down, so
    each outage produces an event the node must keep and deliver after reconnecting."""
    op = Operator(any_broker.host, any_broker.port)
    node_factory(any_broker, "n1")
    try:
        op.wait_for(lambda: op.status.get("n1", {}).get("online"), 20)
        for i in range(20):
            assert op.command("n1", "set", level=50, duration_s=1, timeout=20)["ok"]
            with op.cond:
                op.status.pop("n1", None)
            any_broker.stop()
            time.sleep(1.5)  # the override ends during the outage: its event is queued on the node
            any_broker.start()
            op.wait_for(lambda: op.status.get("n1", {}).get("online"), 30)  # the node's new birth message
        op.wait_for(lambda: op.status.get("n1", {}).get("online"), 30)
        c = _counters(op)
        assert c["link"]["connects"] >= 21
        # Node side: every event produced was acknowledged by the broker; none dropped, none left queued.
        op.wait_for(lambda: _counters(op)["events"]["queued"] == 0, 30)
        ev = _counters(op)["events"]
        assert ev["produced"] >= 20 and ev["acked"] == ev["produced"] and ev["dropped"] == 0
        st = op.command("n1", "get", what="state")["state"]
        assert st["level"] == 100 and st["override"] is None and st["reason"] == "program:default"
    finally:
        op.close()


def test_events_from_an_outage_arrive_in_order(node_factory):
    """With a persistent broker session (mosquitto persistence), the operator receives every event the node
    produced while the broker was down, in order and without gaps."""
    from broker import mosquitto_path

    if not mosquitto_path():
        import pytest

        pytest.skip("needs mosquitto (broker-side persistence of the operator's session)")
    b = Broker("mosquitto", persistence=True).start()
    op = Operator(b.host, b.port, client_id="op-persistent", clean_session=False)
    try:
        node_factory(b, "n1")
        op.wait_for(lambda: op.status.get("n1", {}).get("online"), 20)
        for i in range(3):
            assert op.command("n1", "set", level=40 + i, duration_s=1)["ok"]
            with op.cond:
                op.status.pop("n1", None)
            b.stop()
            time.sleep(1.5)
            b.start()
            op.wait_for(lambda: op.status.get("n1", {}).get("online"), 30)
        op.wait_for(lambda: len(_override_ends(op)) >= 3, 30)
        seqs = [e["seq"] for n, e in op.events]
        # QoS 1 is at-least-once: an event whose PUBACK died with the broker comes again (same seq). Consumers
        # de-duplicate by seq; what must hold is that nothing is missing and nothing arrives out of order.
        unique = sorted(set(seqs))
        assert unique == list(range(unique[0], unique[0] + len(unique)))
        assert seqs == sorted(seqs)
    finally:
        op.close()
        b.close()


def test_broker_absent_at_boot(node_factory, tmp_path):
    b = Broker("auto")  # port chosen, not started yet
    vn = node_factory(b, "n1")
    time.sleep(4)  # the node boots, decides its lamp, and retries the broker with backoff
    assert vn.alive()
    log = vn.read_log()
    assert "boot:" in log
    b.start()
    op = Operator(b.host, b.port)
    try:
        op.wait_for(lambda: op.status.get("n1", {}).get("online"), 20)
        st = op.wait_for(lambda: op.state.get("n1"), 10)
        assert st["level"] == 100
        counters = _counters(op)["link"]
        assert counters["failures"] >= 1 and counters["connects"] == 1
    finally:
        op.close()
        b.close()


class StallingProxy:
    """A TCP proxy that can freeze existing connections without closing them: a half-open link, as after a
    cellular or Wi-Fi router silently drops state. New connections are forwarded normally."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.frozen = []  # connection pairs that stopped forwarding
        self.live = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            u = socket.create_connection(self.target)
            pair = {"c": c, "u": u, "stalled": False}
            self.live.append(pair)
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(pair, a, b), daemon=True).start()

    def _pump(self, pair, src, dst):
        while True:
            try:
                data = src.recv(4096)
            except OSError:
                return
            if not data:
                return
            while pair["stalled"]:
                time.sleep(0.05)  # swallow nothing, send nothing: the bytes wait forever
            try:
                dst.sendall(data)
            except OSError:
                return

    def stall_all(self):
        for p in self.live:
            p["stalled"] = True
        self.frozen.extend(self.live)
        self.live = []

    def close(self):
        self.closed = True
        self.sock.close()


def test_stalled_link_is_detected_and_replaced(broker, node_factory, tmp_path):
    proxy = StallingProxy(broker.port)
    cfg = node_config(broker, "n1", keepalive_s=10, brokers=[{"host": "127.0.0.1", "port": proxy.port}])
    op = Operator(broker.host, broker.port)
    try:
        vn = node_factory(broker, "n1", config=cfg)
        op.wait_for(lambda: op.status.get("n1", {}).get("online"), 20)
        # Let the boot events be acknowledged first, so that only the keepalive can notice the stall.
        op.wait_for(lambda: _counters(op)["events"]["queued"] == 0, 20)
        with op.cond:
            op.status.pop("n1", None)
        proxy.stall_all()
        t0 = time.time()
        # Keepalive 10 s: the node must give up on the silent link within 1.5 x 10 s and reconnect through a
        # fresh connection (its new birth message shows it); it then answers again.
        op.wait_for(lambda: proxy.live and op.status.get("n1", {}).get("online"), 30)
        detect = time.time() - t0
        print("stalled link replaced after %.1f s (keepalive 10 s)" % detect)
        assert detect <= 15 + 4, detect
        r = _counters(op)
        assert r["link"]["drops"] >= 1 and "keepalive" in r["link"]["last_error"]
        assert vn.history == []  # a dead link is the link's business: the node itself never restarted
    finally:
        op.close()
        proxy.close()


def test_burst_of_1000_commands_all_answered(broker, node_factory):
    op = Operator(broker.host, broker.port)
    try:
        vn = node_factory(broker, "n1")
        op.wait_for(lambda: op.status.get("n1", {}).get("online"), 20)
        ids = [op.send("n1", "get", id="b%04d" % i, what="state") for i in range(1000)]
        op.wait_for(lambda: all(i in op.replies for i in ids), 120)
        assert all(op.replies[i][0]["ok"] for i in ids)
        r = op.command("n1", "set", level=42)
        assert r["ok"] and r["level"] == 42  # still responsive after the burst
        assert vn.alive() and vn.history == []  # and it never restarted
    finally:
        op.close()


def test_one_megabyte_message_does_not_take_the_node_down(any_broker, node_factory):
    op = Operator(any_broker.host, any_broker.port)
    try:
        vn = node_factory(any_broker, "n1")
        op.wait_for(lambda: op.status.get("n1", {}).get("online"), 20)
        n = len(op.raw)
        op.publish_raw("city/lights/n1/cmd", b"x" * (1024 * 1024))
        reply = op.wait_for(lambda: [json.loads(p) for t, p, _ in op.raw[n:] if t.endswith("/reply")], 20)[0]
        assert reply["ok"] is False and "exceeds" in reply["error"]
        assert vn.alive()
        r = _counters(op)
        assert r["ok"] and r["link"]["oversize"] == 1 and r["link"]["drops"] == 0
    finally:
        op.close()
