"""Asks NTP servers for the time without ever blocking the control loop: one UDP request, the answer picked up from
the node's poll, a deadline, then the next server. Whether the answer is believed is TimeKeeper's decision."""

import socket

from firmware import sntp
from firmware.compat import const, ticks_add, ticks_diff

_ANSWER_MS = const(3000)  # an NTP answer that takes longer than this is not coming
_RETRY_MS = const(60000)  # after a failure (or while the node has no valid time): try again soon


class NtpClient:
    def __init__(self, hosts, interval_s, poller, now_ms):
        self.hosts = hosts
        self.interval_ms = interval_s * 1000
        self.poller = poller
        self._host = 0
        self._sock = None
        self._deadline = 0
        self._next = now_ms  # first attempt as soon as the network is up
        self._buf = bytearray(sntp.PACKET_LEN)

    def next_due_ms(self, now_ms):
        return max(0, ticks_diff(self._deadline if self._sock else self._next, now_ms))

    def service(self, now_ms, net_up, time_valid):
        """→ (t2k, None) when a server answered, (None, reason) when an attempt failed, (None, None) otherwise."""
        if self._sock is not None:
            data = None
            try:
                data = self._sock.recv(64)
            except OSError:  # EAGAIN: nothing yet
                pass
            if data:
                host = self.hosts[self._host]
                self._close(now_ms, self.interval_ms if time_valid else _RETRY_MS)
                try:
                    return sntp.parse(data), None
                except ValueError as e:
                    self._host = (self._host + 1) % len(self.hosts)
                    return None, "ntp %s: %s" % (host, e)
            if ticks_diff(now_ms, self._deadline) >= 0:
                host = self.hosts[self._host]
                self._host = (self._host + 1) % len(self.hosts)
                self._close(now_ms, _RETRY_MS)
                return None, "ntp %s: no answer" % host
            return None, None
        if not net_up or ticks_diff(now_ms, self._next) < 0:
            return None, None
        host = self.hosts[self._host]
        try:
            addr = socket.getaddrinfo(*sntp.server_address(host))[0][-1]  # DNS: the one step that may block
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setblocking(False)
            sntp.request(self._buf)
            s.sendto(self._buf, addr)
        except (OSError, ValueError, IndexError) as e:
            self._host = (self._host + 1) % len(self.hosts)
            self._next = ticks_add(now_ms, _RETRY_MS)
            return None, "ntp %s: %s" % (host, e)
        self._sock = s
        self.poller.register(s, 1)
        self._deadline = ticks_add(now_ms, _ANSWER_MS)
        return None, None

    def _close(self, now_ms, wait_ms):
        try:
            self.poller.unregister(self._sock)
        except (OSError, KeyError, ValueError):
            pass
        self._sock.close()
        self._sock = None
        self._next = ticks_add(now_ms, wait_ms)
