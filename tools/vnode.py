"""Runs one virtual lamp post: the firmware under the MicroPython unix port on drivers/sim.py, restarted like a chip.

    python tools/vnode.py --dir DIR [--config FILE] [--sim FILE] [--cause power_on] [--log FILE]
                          [--micropython PATH | --esp32] [--placement files|frozen] [--heap 112K]

DIR is the node's flash: it gets config.json (the given file, else a minimal one unless one is there already) and
sim.json (likewise, validated against drivers.sim.SIM_SCHEMA). Like an ESP32, the node first runs boot.py (the
crash-loop guard), then main.py, in one interpreter: `micropython -c "import boot; import main"`, with cwd=DIR.

The simulated world's clock is set in sim.json: `start_t2k` is the world time (seconds since 2000-01-01 UTC) when
the node is first created, and `speed` is world seconds per real second (1 = real time, 720 = a night in a minute);
`rtc_valid_at_boot`, `rtc_battery` and `ticks_offset` (start ticks_ms near 2^30 to cross its wrap) do the rest.
Example: {"start_t2k": 849182400, "speed": 60} starts at 2026-11-28 12:00 UTC (19:00 in Padang), a world
minute a real second.
Every field, with its range: drivers/sim.py SIM_SCHEMA.

Which MicroPython (`--micropython`, default: the project's native build from tools/mpbuild.py where it has been
built, else the pip-packaged one next to this Python; a node configured for TLS always takes the pip one, the only
one with TLS). `--esp32` takes the esp32-shaped build (32-bit, float32, 2 heap areas; `make mp-esp32` builds it).

Where the code comes from (`--placement`):
* files (default) — the repo's boot.py, main.py, firmware/, drivers/ and lib/ as source: MICROPYPATH=<repo>:
  <repo>/lib:.frozen. The repo comes before .frozen so that on a binary with the firmware frozen in, the files win.
* frozen — as on the city's ESP32 image: DIR holds only boot.py and main.py (copied from the repo), config.json and
  sim.json; every other module must come from the binary's frozen image (MICROPYPATH=:.frozen:lib, the ESP32's
  sys.path order '', '.frozen', 'lib'). DIR may not hold firmware/, drivers/ or umqtt/: they would shadow the frozen
  modules.

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
PLACEMENTS = ("files", "frozen")
# Code from the repo's files: the code, then its libraries, then the frozen modules (ssl and asyncio are frozen into
# the pip unix port; our esp32-shaped build freezes the firmware itself, which the files must win over). Setting
# MICROPYPATH replaces the default path, so ".frozen" must be named or `import ssl` fails.
MICROPYPATH = os.pathsep.join((ROOT, os.path.join(ROOT, "lib"), ".frozen"))
# Code frozen in: the ESP32's own sys.path ('', '.frozen', '/lib'). The empty entry is the cwd (DIR, with boot.py and
# main.py) even when a script is run, where the unix port replaces sys.path[0] by the script's folder.
MICROPYPATH_FROZEN = os.pathsep.join(("", ".frozen", "lib"))
FROZEN_FILES = ("boot.py", "main.py")  # what the frozen placement copies onto the node's flash
SHADOWING = ("firmware", "drivers", "umqtt")  # folders in DIR that would win over the frozen packages


def micropython_binary():
    """The micropython next to this Python (the project venv), else the one on PATH."""
    p = os.path.join(os.path.dirname(sys.executable), "micropython")
    if os.path.exists(p):
        return p
    found = shutil.which("micropython")
    if not found:
        raise RuntimeError("micropython not found: run `make venv` first")
    return found


def host_micropython():
    """The project's native build (tools/mpbuild.py native) where it has been built: 3.5–3.9 MB RSS a node against
    12.7–13.0 MB for the pip one, which runs MicroPython inside a CPython. Else the pip one."""
    import mpbuild

    return mpbuild.built_native() or micropython_binary()


def esp32_micropython():
    """The esp32-shaped build for the current sources (built now when missing: about a minute; raises
    mpbuild.BuildError without the i686 compiler)."""
    import mpbuild

    return mpbuild.build_esp32()


def _uses_tls(cfg_path):
    try:
        with open(cfg_path) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return False
    mqtt = doc.get("mqtt") if isinstance(doc, dict) else None
    return isinstance(mqtt, dict) and bool(mqtt.get("tls"))


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
    `micropython`: the binary (default: host_micropython(), or the pip one for a TLS config); `placement`: "files"
    or "frozen" (see the module's docstring; "frozen" needs a binary with the firmware frozen in).

    After a run: `history` lists (reset cause given, exit code) per boot, the code being 77 for a watchdog reset;
    `returncode` is the code that ended supervision (None while supervised)."""

    def __init__(self, dir, config=None, sim=None, env=None, main=None, boot=None, micropython=None, mp_args=(),
                 log=None, max_restarts=None, placement="files"):
        if placement not in PLACEMENTS:
            raise ValueError("placement must be one of %s, not %r" % (", ".join(PLACEMENTS), placement))
        self.placement = placement
        self.dir = os.path.abspath(dir)
        self.config = config
        self.sim = sim
        self.env = dict(env or {})
        self.main = os.path.abspath(main) if main else os.path.join(ROOT, "main.py")
        if boot is None and not main and os.path.exists(os.path.join(ROOT, "boot.py")):
            boot = os.path.join(ROOT, "boot.py")
        self.boot = os.path.abspath(boot) if boot else None
        # None: chosen at each boot from the config (TLS or not). A relative path is made absolute here: the node
        # runs with cwd = its directory.
        self.micropython = os.path.abspath(micropython) if micropython and os.sep in micropython else micropython
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
        if self.placement == "frozen":
            found = [d for d in SHADOWING if os.path.exists(os.path.join(self.dir, d))]
            if found:
                raise ValueError("%s: %s would shadow the frozen modules" % (self.dir, ", ".join(found)))
            for name in FROZEN_FILES:
                shutil.copyfile(os.path.join(ROOT, name), os.path.join(self.dir, name))

    def binary(self):
        """The micropython this node boots with."""
        if self.micropython:
            return self.micropython
        if _uses_tls(os.path.join(self.dir, "config.json")):
            return micropython_binary()
        return host_micropython()

    # --- processes ---

    def _command(self):
        cmd = [self.binary()] + self.mp_args
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
        env["MICROPYPATH"] = MICROPYPATH_FROZEN if self.placement == "frozen" else MICROPYPATH
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


_CLOCK_HELP = """The simulated clock is set in sim.json (--sim FILE): "start_t2k" = world time in seconds since
2000-01-01 UTC when the node is first created, "speed" = world seconds per real second (720: a night in a minute).
Also "rtc_valid_at_boot", "rtc_battery", "ticks_offset". Example sim.json: {"start_t2k": 849182400, "speed": 60}
(2026-11-28 12:00 UTC = 19:00 in Padang, a world minute a real second). Every field: drivers/sim.py SIM_SCHEMA."""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=_CLOCK_HELP,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", required=True, help="the node's data directory (its flash)")
    ap.add_argument("--config", help="config.json to install")
    ap.add_argument("--sim", help="sim.json to install")
    ap.add_argument("--cause", default="power_on", help="reset cause of the first boot")
    ap.add_argument("--log", default="-", help="file for the node's output (default: this console)")
    ap.add_argument("--main", help="run this script instead of the firmware (no boot.py)")
    ap.add_argument("--heap", help="micropython heap size, e.g. 112K (default: the port's)")
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--micropython", help="the micropython binary (default: the native build, else pip's)")
    which.add_argument("--esp32", action="store_true", help="the esp32-shaped build (built now if missing)")
    ap.add_argument("--placement", choices=PLACEMENTS, default="files",
                    help="files: the repo's sources; frozen: the binary's frozen firmware (default: files)")
    args = ap.parse_args(argv)
    binary = args.micropython
    if args.esp32:
        import mpbuild

        try:
            binary = mpbuild.build_esp32()
        except mpbuild.BuildError as e:
            sys.stderr.write("vnode: %s\n" % e)
            return 2
    node = VirtualNode(args.dir, config=args.config, sim=args.sim, main=args.main, log=args.log,
                       mp_args=["-X", "heapsize=" + args.heap] if args.heap else (), micropython=binary,
                       placement=args.placement)
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
