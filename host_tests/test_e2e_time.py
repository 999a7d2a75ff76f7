"""End to end: the node takes its time from NTP (a fake UDP server here), and refuses answers it must not believe."""

import socket
import threading

import pytest
from nodekit import NIGHT_T2K, node_config
from operator_client import Operator
from test_sntp import answer

from firmware.sntp import NTP_TO_T2K  # noqa: F401  (answer() builds on it)


class FakeNtp:
    """Answers every request with `reply(now_t2k)`; counts the requests."""

    def __init__(self, make_reply):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.make_reply = make_reply
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                data, addr = self.sock.recvfrom(512)
            except OSError:
                return
            if len(data) >= 48 and data[0] & 7 == 3:
                self.requests += 1
                self.sock.sendto(self.make_reply(), addr)

    def close(self):
        self.sock.close()


def node_with_ntp(broker, node_factory, server):
    cfg = node_config(broker, "n1", time={"ntp_hosts": ["127.0.0.1:%d" % server.port]})
    # The RTC was lost (power cut, no battery): the node starts without valid time and must ask NTP.
    return node_factory(broker, "n1", config=cfg, sim={"rtc_valid_at_boot": False})


def test_time_from_ntp(broker, node_factory):
    server = FakeNtp(lambda: answer(NIGHT_T2K + 60))
    op = Operator(broker.host, broker.port)
    try:
        node_with_ntp(broker, node_factory, server)
        st = op.wait_for(lambda: op.state.get("n1", {}).get("time_source") == "ntp" and op.state["n1"], 20)
        assert st["time_valid"] is True and st["reason"] == "program:default" and st["level"] == 100
        assert server.requests >= 1
    finally:
        op.close()
        server.close()


@pytest.mark.parametrize("reply,why", [
    (lambda: answer(0 - 946684800), "ntp time refused: 1970 epoch"),
    (lambda: answer(30), "ntp time refused: 2000 epoch"),
    (lambda: answer(NIGHT_T2K, stratum=0), "kiss-of-death"),
])
def test_bad_ntp_answers_are_refused(broker, node_factory, reply, why):
    server = FakeNtp(reply)
    op = Operator(broker.host, broker.port)
    try:
        vn = node_with_ntp(broker, node_factory, server)
        op.wait_for(lambda: server.requests >= 1 and op.state.get("n1"), 20)
        log = op.wait_for(lambda: [x for x in op.command("n1", "get", what="log")["log"] if why in x], 15)
        assert log
        st = op.command("n1", "get", what="state")["state"]
        # Still no valid time: the photocell decides (night in the sim world: lamp on).
        assert st["time_valid"] is False and st["reason"].startswith("photocell") and st["level"] == 100
        assert vn.alive()
    finally:
        op.close()
        server.close()
