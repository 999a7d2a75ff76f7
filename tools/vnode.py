"""Runs one virtual lamp post: the firmware under the MicroPython unix port on drivers/sim.py, restarted like a chip.

    python tools/vnode.py --dir DIR [--config FILE] [--sim FILE] [--cause power_on] [--log FILE]

DIR is the node's flash: it gets config.json (the given file, else a minimal one unless one is there already) and
sim.json (likewise, validated against drivers.sim.SIM_SCHEMA). The node runs with cwd=DIR and
MICROPYPATH=.frozen:<repo>:<repo>/lib. Like an ESP32, it first runs boot.py (the crash-loop guard), then main.py, in one
interpreter: `micropython -c "import boot; import main"`.

Resets, as the supervisor sees them:
* exit 78 — `system.reset()`, a soft reset: restarted with SIM_RESET_CAUSE=soft.
* exit 77, or killed by SIGKILL with DIR/sim_reset saying "wdt" — the sim's watchdog fired (drivers/sim.py explains
  why it has to kill itself): restarted with SIM_RESET_CAUSE=wdt and reported as exit code 77.
* anything else (a crash, SIGKILL from outside, SIGTERM) ends the node; the CLI exits with that code (128 + signal
  for a signal). SIGTERM/SIGINT to the CLI are forwarded to the node as SIGTERM.

Tests import `VirtualNode` for the same thing with more control (restart with any cause, kill with any signal).
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from drivers.sim import RESET_FILE, SIM_SCHEMA, SOFT_EXIT, WDT_EXIT  # noqa: E402  (needs ROOT on sys.path)
from firmware.schema import NAME_CHARS  # noqa: E402

BOOTSTRAP = "import boot\nimport main\n"  # the ESP32's order: boot.py, then main.py, in one interpreter
# The device's own search order: frozen modules first (ssl and asyncio are frozen into the unix port, as into the
# ESP32 image), then the code, then its libraries. Setting MICROPYPATH replaces the default path, so ".frozen" must
# be named or `import ssl` fails.
MICROPYPATH = os.pathsep.join((".frozen", ROOT, os.path.join(ROOT, "lib")))


def micropython_binary():
    """The micropython next to this Python (the project venv), else the one on PATH."""
    p = os.path.join(os.path.dirname(sys.executable), "micropython")
    if os.path.exists(p):
        return p
    found = shutil.which("micropython")
    if not found:
        raise RuntimeError("micropython not found: run `make venv` first")
    return found


def minimal_config(node_dir):
    """A config that only names the node after its directory (when that is a valid id); the rest is defaults."""
    name = os.path.basename(os.path.abspath(node_dir)).lower()[:32]
    if name and all(c in NAME_CHARS for c in name) and name not in ("group", "all"):
        return {"node": {"id": name}}
    return {}


def _load_doc(doc):
    """A dict as is; a str is the path of a JSON file."""
    if isinstance(doc, str):
        with open(doc) as f:
            return json.load(f)
    return doc


def exit_status(code):
    """A child's returncode as a shell exit status (a signal N becomes 128 + N)."""
    return 128 - code if code < 0 else code


class VirtualNode:
    """One virtual node under supervision. `config`, `sim`: dict or path to a JSON file, or None (keep the
    directory's own file, or write a minimal one). `env`: extra environment for the node. `main`: the script to
    run instead of the firmware (tests use stand-ins); `boot`: a boot script run first (default: the repo's
    boot.py when `main` is the repo's main.py). `log`: file collecting the node's output (default DIR/node.log;
    "-" = this process's stdout). `mp_args`: extra micropython arguments, e.g. ["-X", "heapsize=128K"].

    After a run: `history` lists (reset cause given, exit code) per boot, the code being 77 for a watchdog reset;
    `returncode` is the code that ended supervision (None while supervised)."""

    def __init__(self, dir, config=None, sim=None, env=None, main=None, boot=None, micropython=None, mp_args=(),
                 log=None, max_restarts=None):
        self.dir = os.path.abspath(dir)
        self.config = config
        self.sim = sim
        self.env = dict(env or {})
        self.main = os.path.abspath(main) if main else os.path.join(ROOT, "main.py")
        if boot is None and not main and os.path.exists(os.path.join(ROOT, "boot.py")):
            boot = os.path.join(ROOT, "boot.py")
        self.boot = os.path.abspath(boot) if boot else None
        self.micropython = micropython or micropython_binary()
        self.mp_args = list(mp_args)
        self.log_path = log or os.path.join(self.dir, "node.log")
        self.max_restarts = max_restarts
        self.history = []
        self.boots = 0
        self.cause = None
        self.returncode = None
        self._proc = None
        self._thread = None
        self._stopping = False
        self._next_cause = None
        self._cv = threading.Condition()

    # --- files ---

    def prepare(self):
        """Create the directory with config.json and sim.json."""
        os.makedirs(self.dir, exist_ok=True)
        cfg_path = os.path.join(self.dir, "config.json")
        if self.config is not None:
            _write_json(cfg_path, _load_doc(self.config))
        elif not os.path.exists(cfg_path):
            _write_json(cfg_path, minimal_config(self.dir))
        sim_path = os.path.join(self.dir, "sim.json")
        if self.sim is not None:
            doc = _load_doc(self.sim)
            SIM_SCHEMA.check(doc, "sim")  # a bad sim.json fails here, not as a crash inside the node
            _write_json(sim_path, doc)
        elif not os.path.exists(sim_path):
            _write_json(sim_path, {})

    # --- processes ---

    def _command(self):
        cmd = [self.micropython] + self.mp_args
        if self.boot is None:
            return cmd + [self.main]
        if os.path.dirname(self.boot) != ROOT or os.path.dirname(self.main) != ROOT:
            raise ValueError("boot and main must both be the repo's when booting through boot.py")
        return cmd + ["-c", BOOTSTRAP]

    def _spawn(self, cause):
        # Called with self._cv held (or before the supervisor thread exists).
        marker = os.path.join(self.dir, RESET_FILE)
        if os.path.exists(marker):
            os.remove(marker)  # a stale record must not turn the next crash into a "watchdog reset"
        env = dict(os.environ)
        env.update(self.env)
        env["MICROPYPATH"] = MICROPYPATH
        env["SIM_RESET_CAUSE"] = cause
        self.boots += 1
        self.cause = cause
        header = "--- vnode: boot %d, SIM_RESET_CAUSE=%s ---\n" % (self.boots, cause)
        if self.log_path == "-":
            sys.stderr.write(header)
            out = None
        else:
            out = open(self.log_path, "ab")
            out.write(header.encode())
            out.flush()
        try:
            self._proc = subprocess.Popen(self._command(), cwd=self.dir, env=env, stdin=subprocess.DEVNULL,
                                          stdout=out, stderr=subprocess.STDOUT if out else None)
        finally:
            if out is not None:
                out.close()  # the child has its own descriptor
        self._cv.notify_all()

    def _classify(self, rc):
        marker = os.path.join(self.dir, RESET_FILE)
        try:
            with open(marker, "rb") as f:
                record = f.read().strip()
            os.remove(marker)
        except FileNotFoundError:
            record = b""
        if rc == -signal.SIGKILL and record == b"wdt":
            return WDT_EXIT
        return rc

    def _supervise(self):
        while True:
            proc = self._proc
            if proc is None:
                return
            rc = proc.wait()
            with self._cv:
                code = self._classify(rc)
                self.history.append((self.cause, code))
                restarts = len(self.history)
                if self._stopping:
                    cause = None
                elif self._next_cause is not None:
                    cause, self._next_cause = self._next_cause, None
                elif code == WDT_EXIT:
                    cause = "wdt"
                elif code == SOFT_EXIT:
                    cause = "soft"
                else:
                    cause = None
                if cause is not None and self.max_restarts is not None and restarts > self.max_restarts:
                    cause = None
                if cause is None:
                    self.returncode = code
                    self._cv.notify_all()
                    return
                self._spawn(cause)

    def start(self, cause="power_on"):
        """Create the files and boot the node with this reset cause."""
        with self._cv:
            if self._thread is not None and self._thread.is_alive():
                raise RuntimeError("node already running")
            self.prepare()
            self._stopping = False
            self._next_cause = None
            self.returncode = None
            self._spawn(cause)
            self._thread = threading.Thread(target=self._supervise, name="vnode " + self.dir, daemon=True)
            self._thread.start()
        return self

    def restart(self, cause="power_on", timeout=10.0):
        """Reset the node now (SIGKILL: abrupt, like pulling the power) and boot it with `cause`."""
        with self._cv:
            supervised = self._thread is not None and self._thread.is_alive()
            if supervised:
                boots = self.boots
                self._next_cause = cause
                proc = self._proc
                if proc is not None and proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                if not self._cv.wait_for(lambda: self.boots > boots or self.returncode is not None, timeout):
                    raise TimeoutError("node did not restart")
                return self
        self._join()
        return self.start(cause)

    def kill(self, sig=signal.SIGKILL):
        """Send a signal to the node process. Unless it was the watchdog, a killed node stays down."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)

    def stop(self, timeout=10.0):
        """SIGTERM the node (SIGKILL after `timeout`), end supervision; returns the final exit code."""
        with self._cv:
            self._stopping = True
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._join()
        return self.returncode

    def _join(self):
        t = self._thread
        if t is not None:
            t.join(30)

    def alive(self):
        proc = self._proc
        return proc is not None and proc.poll() is None

    @property
    def pid(self):
        return self._proc.pid if self._proc is not None else None

    def wait_boots(self, n, timeout=30.0):
        """Wait until the node has booted at least n times in all; True when it did."""
        with self._cv:
            return self._cv.wait_for(lambda: self.boots >= n, timeout)

    def wait_exit(self, timeout=30.0):
        """Wait for supervision to end (a final exit); the exit code, or None on timeout."""
        with self._cv:
            self._cv.wait_for(lambda: self.returncode is not None, timeout)
            return self.returncode

    def read_log(self):
        if self.log_path == "-" or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


def _write_json(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True, help="the node's data directory (its flash)")
    ap.add_argument("--config", help="config.json to install")
    ap.add_argument("--sim", help="sim.json to install")
    ap.add_argument("--cause", default="power_on", help="reset cause of the first boot")
    ap.add_argument("--log", default="-", help="file for the node's output (default: this console)")
    ap.add_argument("--main", help="run this script instead of the firmware (no boot.py)")
    ap.add_argument("--heap", help="micropython heap size, e.g. 128K (default: the port's)")
    args = ap.parse_args(argv)
    node = VirtualNode(args.dir, config=args.config, sim=args.sim, main=args.main, log=args.log,
                       mp_args=["-X", "heapsize=" + args.heap] if args.heap else ())
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    node.start(args.cause)
    while not stop.is_set() and node.wait_exit(0.2) is None:
        pass
    code = node.stop() if stop.is_set() else node.returncode
    for cause, rc in node.history:
        sys.stderr.write("vnode: boot with %s ended with exit code %d\n" % (cause, rc))
    return exit_status(code if code is not None else 0)


if __name__ == "__main__":
    sys.exit(main())
