"""Start and stop a local MQTT broker for the demo, the tests and the benchmarks.

`kind` is "mosquitto" (the broker cities run; used when it is on PATH), "amqtt" (the embedded pure-Python broker,
always available from the venv) or "auto" (mosquitto if installed, else amqtt). Each broker gets a free port on
127.0.0.1 and a private temporary directory; nothing listens beyond loopback.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def mosquitto_path():
    for p in (shutil.which("mosquitto"), "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if p and os.path.exists(p):
            return p
    return None


def available_kinds():
    return (["mosquitto"] if mosquitto_path() else []) + ["amqtt"]


class Broker:
    """One broker process. `extra_conf` adds mosquitto configuration lines (TLS listeners, ACLs...)."""

    def __init__(self, kind="auto", port=None, extra_conf="", listener=True, persistence=False):
        if kind == "auto":
            kind = available_kinds()[0]
        self.kind = kind
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.extra_conf = extra_conf
        self.listener = listener
        self.persistence = persistence  # mosquitto only: sessions and queued messages survive a restart
        self.dir = tempfile.mkdtemp(prefix="broker-")
        self.proc = None
        self.log_path = os.path.join(self.dir, "broker.log")

    def _command(self):
        if self.kind == "mosquitto":
            conf = os.path.join(self.dir, "mosquitto.conf")
            with open(conf, "w") as f:
                if self.listener:
                    f.write("listener %d 127.0.0.1\nallow_anonymous true\n" % self.port)
                if self.persistence:
                    f.write("persistence true\npersistence_location %s/\n" % self.dir)
                else:
                    f.write("persistence false\n")
                f.write("log_dest stderr\nlog_type error\nlog_type warning\n")
                f.write("max_keepalive 65535\n")
                if "set_tcp_nodelay" not in self.extra_conf:
                    # Without it mosquitto's Nagle + the client's delayed ACK add ~44 ms to a reply that follows
                    # another small write (measured: request/reply p50 44 ms -> ~1 ms). The embedded broker needs no
                    # such line: asyncio sets TCP_NODELAY on every TCP socket it accepts.
                    f.write("set_tcp_nodelay true\n")
                if os.geteuid() == 0:
                    f.write("user root\n")  # as root mosquitto would drop to a user that cannot read our files
                f.write(self.extra_conf)
            return [mosquitto_path(), "-c", conf]
        return [sys.executable, os.path.join(HERE, "embedded_broker.py"), str(self.port)]

    def start(self, timeout=15.0):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited at start: %s" % (self.kind, self.log()))
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("%s did not listen on %d: %s" % (self.kind, self.port, self.log()))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self):
        self.stop()
        self.start()

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-2000:]
        except OSError:
            return ""

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
