"""The two modules umqtt.simple imports that we supply ourselves, put in sys.modules when this module is imported.

- `usocket`: sockets get a timeout before `connect()` (so a dead broker cannot hang the node) and TCP_NODELAY
  (umqtt writes a packet in several small writes; with Nagle and delayed ACK each reply waited ~44 ms).
- `ussl`: 1.3.4 does `import ussl`, which no longer exists; ours wraps with an `ssl.SSLContext` built by the caller
  (see firmware/tls.py), so certificate and host name checks are the context's.

Its own module so that umqtt.simple can be imported straight after it, not from inside firmware/umqtt_hardened.py
(firmware/loadorder.py: every level of nested import holds C stack). Import it before umqtt.simple, always.
"""

import sys

from firmware.compat import const

_IPPROTO_TCP = const(6)  # the unix port's socket module lacks the names; the numbers are POSIX/lwIP's
_TCP_NODELAY = const(1)


class SocketModule:
    """Stands in for the `usocket` module inside umqtt.simple (a class, because MicroPython cannot make modules)."""

    timeout_s = 5

    @staticmethod
    def socket(*args):
        import socket as real

        s = real.socket(*args)
        s.settimeout(SocketModule.timeout_s)
        try:
            s.setsockopt(_IPPROTO_TCP, _TCP_NODELAY, 1)
        except (OSError, AttributeError):  # some lwIP builds refuse it; latency suffers, function does not
            pass
        return s

    @staticmethod
    def getaddrinfo(host, port, *args):
        import socket as real

        return real.getaddrinfo(host, port, *args)


class SslModule:
    """Stands in for the `ussl` module umqtt 1.3.4 imports: wraps with the SSLContext given in ssl_params."""

    @staticmethod
    def wrap_socket(sock, context=None, server_hostname=None):
        if context is None:
            raise OSError("TLS requested without an SSLContext")
        return context.wrap_socket(sock, server_hostname=server_hostname)


sys.modules["usocket"] = SocketModule
sys.modules["ussl"] = SslModule
