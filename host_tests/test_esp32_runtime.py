"""The esp32-shaped MicroPython (tools/mpbuild.py esp32): its number and heap shapes, and its frozen firmware.

The binary is the unix port built for 32-bit x86 with float32 and a GC heap in two areas, with the firmware frozen in
from boards/STREETLIGHT_ESP32/manifest.py (the real board's manifest) plus drivers/sim.py. These tests check that it
really is shaped like an ESP32 (so memory figures taken on it mean something), that the frozen image alone runs the
node, and that a module the device code imports but the manifest does not freeze fails here, not on a pole.
The tier is skipped, in one line naming the Debian package, where the i686 cross compiler is missing.
"""

import ast
import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))
import mpbuild  # noqa: E402
import provision  # noqa: E402
from operator_client import Operator  # noqa: E402
from vnode import FROZEN_FILES, VirtualNode  # noqa: E402

PROJECT_PACKAGES = ("firmware", "drivers", "umqtt")
HOST_ONLY = tuple(p[:-3].replace("/", ".") for p in provision.HOST_ONLY)  # ("drivers.sim",)
# Built-in modules of the ESP32 port that the unix port lacks (ssl: no TLS in this build, see tools/mpbuild.py).
# Stand-ins let a module that imports them load, so the check below is about OUR modules being frozen.
PORT_ONLY = ("esp32", "network", "ssl")


def run_mp(binary, code, cwd, heap="112K", path=".frozen"):
    """Run `code` under `binary` in `cwd` with only `path` on MICROPYPATH; the completed process."""
    env = dict(os.environ, MICROPYPATH=path)
    return subprocess.run([binary, "-X", "heapsize=" + heap, "-c", code], cwd=str(cwd), env=env,
                          capture_output=True, text=True, timeout=120)


def last_json(p):
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def board_modules():
    """Dotted names of the modules the board manifest freezes (the list it is built from: tools/mpbuild.py)."""
    out = []
    for target, _src in mpbuild.frozen_sources():
        name = target[:-3].replace("/", ".")
        out.append(name[: -len(".__init__")] if name.endswith(".__init__") else name)
    return out


def frozen_in(binary, cwd):
    """Dotted names of the project's modules frozen into `binary`, as its help("modules") lists them."""
    p = run_mp(binary, "help('modules')", cwd)
    assert p.returncode == 0, p.stderr
    names = set()
    for word in p.stdout.split():
        if word.split("/")[0] in PROJECT_PACKAGES:
            name = word.replace("/", ".")
            names.add(name[: -len(".__init__")] if name.endswith(".__init__") else name)
    return names


def device_imports(root=ROOT):
    """{module: [file that imports it]} for every project module the device code imports (boot.py, main.py and every
    frozen source, lazy imports inside functions included)."""
    files = [os.path.join(root, n) for n in FROZEN_FILES] + [src for _t, src in mpbuild.frozen_sources(root)]
    found = {}
    for path in files:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        rel = os.path.relpath(path, root)
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
                # `from firmware import config`: config is a module when firmware/config.py exists
                names += [node.module + "." + a.name for a in node.names
                          if os.path.exists(os.path.join(root, *(node.module + "." + a.name).split(".")) + ".py")]
            for name in names:
                if name.split(".")[0] in PROJECT_PACKAGES:
                    found.setdefault(name, []).append(rel)
    return found


def missing_from_image(imports, frozen, allowed=HOST_ONLY):
    """Lines naming each imported module that is not frozen (and not a host-only one)."""
    return ["%s (imported by %s)" % (m, ", ".join(sorted(set(by)))) for m, by in sorted(imports.items())
            if m not in frozen and m not in allowed]


# --- the shape ------------------------------------------------------------------------------------------------------


def test_objects_are_32_bit_and_floats_are_float32(esp32_micropython, tmp_path):
    code = ("import sys, time, json\n"
            "print(json.dumps({'maxsize': sys.maxsize, 'big': 16777216.0 + 1.0 == 16777216.0,"
            " 'f': int(16777217.0), 'inf': 3.5e38 == float('inf'), 'ticks_max': time.ticks_add(0, -1)}))\n")
    got = last_json(run_mp(esp32_micropython, code, tmp_path))
    assert got["maxsize"] == 2**31 - 1  # MICROPY_OBJ_REPR_A on a 32-bit machine, as on the ESP32
    # float32: 2^24 + 1 is not representable (a double would keep it), 3.5e38 is past float32's maximum
    assert got["big"] is True and got["f"] == 16777216 and got["inf"] is True
    assert got["ticks_max"] == 2**30 - 1  # ticks_ms period 2^30, the ESP32's


@pytest.mark.parametrize("heap_k, area_k", [(112, 56), (64, 32)])
def test_heap_is_two_equal_areas(esp32_micropython, tmp_path, heap_k, area_k):
    """-X heapsize=N gives two areas of N/2 (ports/unix/main.c divides it): a block a little smaller than one area
    fits, one a little larger does not although the heap as a whole has room for it."""
    code = ("import gc, json\n"
            "gc.collect()\n"
            "total = gc.mem_free() + gc.mem_alloc()\n"
            "def fits(n):\n"
            "    try:\n"
            "        b = bytearray(n)\n"
            "    except MemoryError:\n"
            "        return False\n"
            "    return True\n"
            "small = fits(%d)\n"
            "gc.collect()\n"
            "free = gc.mem_free()\n"
            "big = fits(%d)\n"
            "print(json.dumps({'total': total, 'small': small, 'big': big, 'free': free}))\n"
            % ((area_k - 4) * 1024, (area_k + 2) * 1024))
    got = last_json(run_mp(esp32_micropython, code, tmp_path, heap="%dK" % heap_k))
    assert heap_k * 1024 * 0.97 < got["total"] <= heap_k * 1024, got  # both areas count, less the GC's tables
    assert got["small"] is True, got
    assert got["big"] is False and got["free"] > (area_k + 2) * 1024, got


# The ESP32's MicroPython task: a 16 KB C stack, less MICROPY_STACK_CHECK_MARGIN (1 KB) (ports/esp32). The unix port
# allows 40,000 bytes; tools/mpbuild.py lets MICROPY_C_STACK_LIMIT set it. i386 frames are not Xtensa frames, so
# passing at this limit here is necessary for the chip, not proof of it.
ESP32_C_STACK = 15 * 1024
RECURSION = ("def f(n):\n"
             "    try:\n"
             "        return f(n + 1)\n"
             "    except RuntimeError:\n"
             "        return n\n"
             "print(f(0))\n")


def test_the_c_stack_limit_can_be_set_to_the_esp32s(esp32_micropython, tmp_path, monkeypatch):
    default = int(run_mp(esp32_micropython, RECURSION, tmp_path).stdout.split()[-1])
    monkeypatch.setenv(mpbuild.STACK_ENV, str(ESP32_C_STACK))
    esp32 = int(run_mp(esp32_micropython, RECURSION, tmp_path).stdout.split()[-1])
    assert 10 < esp32 < default * 0.5, (esp32, default)  # 15,360 of 40,000 bytes: well under half the depth


# main.py's imports, made the way main.py makes them (inside a function of an imported module, after boot.py):
# every module of firmware/loadorder.py one by one, then what main.py names.
MAIN_IMPORTS = ("def _run():\n"
                "    from firmware.loadorder import MODULES\n"
                "    for name in MODULES:\n"
                "        __import__(name)\n"
                "    from drivers.filestore import FileStore  # noqa\n"
                "    from firmware import startup  # noqa\n"
                "    from drivers.sim import board_for, seed  # noqa\n"
                "_run()\n"
                "print('imported')\n")
# The same imports the way main.py made them before firmware/loadorder.py: nested, through startup.
NESTED_IMPORTS = MAIN_IMPORTS.replace("    from firmware.loadorder import MODULES\n    for name in MODULES:\n"
                                      "        __import__(name)\n", "")


def test_nested_imports_would_not_fit_the_esp32_c_stack(esp32_micropython, tmp_path, monkeypatch):
    """Why firmware/loadorder.py exists (and that the limit below really bites): nested, the imports overflow.
    (Without boot.py, which now imports everything in loadorder's order itself.)"""
    (tmp_path / "probe_main.py").write_text(NESTED_IMPORTS)
    monkeypatch.setenv(mpbuild.STACK_ENV, str(ESP32_C_STACK))
    monkeypatch.setenv("SIM_RESET_CAUSE", "power_on")
    p = run_mp(esp32_micropython, "import probe_main\n", tmp_path, path=":.frozen:lib")
    assert NESTED_IMPORTS != MAIN_IMPORTS
    assert "maximum recursion depth" in p.stdout + p.stderr, p.stdout[-2000:] + p.stderr


def test_the_node_imports_within_the_esp32_c_stack(esp32_micropython, tmp_path, monkeypatch):
    (tmp_path / "boot.py").write_bytes(open(os.path.join(ROOT, "boot.py"), "rb").read())  # it runs first on a chip
    (tmp_path / "probe_main.py").write_text(MAIN_IMPORTS)
    monkeypatch.setenv(mpbuild.STACK_ENV, str(ESP32_C_STACK))
    monkeypatch.setenv("SIM_RESET_CAUSE", "power_on")
    p = run_mp(esp32_micropython, "import boot\nimport probe_main\n", tmp_path, path=":.frozen:lib")
    assert p.returncode == 0 and "maximum recursion depth" not in p.stdout + p.stderr, p.stdout[-2000:] + p.stderr
    assert p.stdout.strip().splitlines()[-1] == "imported"


def test_the_node_imports_within_the_unix_ports_own_stack(esp32_micropython, tmp_path, monkeypatch):
    """The same probe at the port's default limit: what the xfail above is measured against."""
    (tmp_path / "boot.py").write_bytes(open(os.path.join(ROOT, "boot.py"), "rb").read())
    (tmp_path / "probe_main.py").write_text(MAIN_IMPORTS)
    monkeypatch.setenv("SIM_RESET_CAUSE", "power_on")
    p = run_mp(esp32_micropython, "import boot\nimport probe_main\n", tmp_path, path=":.frozen:lib")
    assert p.returncode == 0 and p.stdout.strip().splitlines()[-1] == "imported", p.stdout[-2000:] + p.stderr


# --- the frozen image -----------------------------------------------------------------------------------------------


def test_the_image_freezes_exactly_the_board_manifest_plus_sim(esp32_micropython, tmp_path):
    assert frozen_in(esp32_micropython, tmp_path) == set(board_modules()) | set(HOST_ONLY)


def test_every_frozen_module_imports_from_the_image_alone(esp32_micropython, tmp_path):
    """An empty flash, MICROPYPATH=.frozen: every module the board freezes imports (ESP32-only built-ins stood in)."""
    code = ("import sys, json\n"
            "class _Stand:\n"
            "    pass\n"
            "for n in %r:\n"
            "    try:\n"
            "        __import__(n)\n"
            "    except ImportError:\n"
            "        sys.modules[n] = _Stand()\n"
            "bad = {}\n"
            "for n in %r:\n"
            "    try:\n"
            "        __import__(n)\n"
            "    except Exception as e:\n"
            "        bad[n] = repr(e)\n"
            "print(json.dumps(bad))\n" % (PORT_ONLY, board_modules()))
    assert os.listdir(tmp_path) == []
    assert last_json(run_mp(esp32_micropython, code, tmp_path, heap="512K")) == {}


def test_every_module_the_device_code_imports_is_frozen(esp32_micropython, tmp_path):
    """Lazy imports too (commands, OTA, TLS load their modules when they run): read from the sources."""
    imports = device_imports()
    assert "firmware.startup" in imports and "umqtt.simple" in imports  # the scan does find imports
    assert missing_from_image(imports, frozen_in(esp32_micropython, tmp_path)) == []


def test_a_module_the_manifest_forgets_is_named():
    """The check above, against an image that lacks one module the node imports."""
    imports = device_imports()
    frozen = set(board_modules()) - {"firmware.schema"}
    missing = missing_from_image(imports, frozen)
    assert len(missing) == 1 and missing[0].startswith("firmware.schema (imported by ") and "firmware/" in missing[0]
    assert missing_from_image({"drivers.sim": ["main.py"]}, set()) == []  # host-only: never on the board


def test_the_board_manifest_as_ports_esp32_reads_it(esp32_micropython, tmp_path):
    """ESP-IDF cannot run here; MicroPython's own manifest reader can. With the ESP32 port's paths the board freezes
    the port's modules (_boot.py mounts the filesystem), micropython-lib's ssl and our three packages — not the sim."""
    import importlib.util

    tree = mpbuild.source_tree()  # built with the binary: no extra fetch
    spec = importlib.util.spec_from_file_location("manifestfile", os.path.join(tree, "tools", "manifestfile.py"))
    manifestfile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(manifestfile)
    ssl_pkg = tmp_path / "micropython-lib" / "python-stdlib" / "ssl"  # micropython-lib's layout, only ssl in it
    ssl_pkg.mkdir(parents=True)
    (ssl_pkg / "manifest.py").write_text('metadata(version="0.0.0")\nmodule("ssl.py")\n')
    (ssl_pkg / "ssl.py").write_text("")
    m = manifestfile.ManifestFile(manifestfile.MODE_FREEZE, {
        "MPY_DIR": tree, "MPY_LIB_DIR": str(tmp_path / "micropython-lib"),
        "PORT_DIR": os.path.join(tree, "ports", "esp32"), "BOARD_DIR": os.path.dirname(mpbuild.BOARD_MANIFEST)})
    m.execute(mpbuild.BOARD_MANIFEST)
    frozen = {f.target_path for f in m.files()}
    board = {t for t, _src in mpbuild.frozen_sources()}
    assert {"_boot.py", "inisetup.py", "flashbdev.py", "ssl.py"} <= frozen, sorted(frozen)
    assert {t for t in frozen if t.split("/")[0] in PROJECT_PACKAGES} == board  # all of ours, and no drivers/sim.py


def test_the_real_node_boots_online_from_the_frozen_image_at_112k(esp32_micropython, broker, tmp_path):
    """boot.py + main.py on the flash, everything else frozen, 2 x 56 KB: online, retained, answering."""
    from nodekit import esp32_frozen, make_node

    d = tmp_path / "frozen1"
    vn = make_node(str(d), broker, "frozen1", **esp32_frozen(esp32_micropython, "112K"))
    op = Operator(broker.host, broker.port)
    late = None
    try:
        vn.start()
        op.wait_for(lambda: op.status.get("frozen1", {}).get("online"), 30)
        r = op.command("frozen1", "get", timeout=10, what="state")
        assert r["ok"] and r["state"]["reason"] == "program:default", r
        late = Operator(broker.host, broker.port)  # connects after the birth: sees it only if it was retained
        late.wait_for(lambda: late.status.get("frozen1", {}).get("online"), 10)
        alive = vn.alive()
    finally:
        vn.stop()
        op.close()
        if late is not None:
            late.close()
    log = vn.read_log()
    assert alive and "Traceback" not in log and "MemoryError" not in log, log[-2000:]
    assert not any(os.path.exists(os.path.join(str(d), p)) for p in ("firmware", "drivers", "umqtt", "lib"))


def test_the_real_node_runs_an_operator_session_within_the_esp32_c_stack(esp32_micropython, broker, tmp_path):
    """The real boot.py + main.py, frozen, 2 x 56 KB, and the C stack an ESP32's MicroPython task has (15 KB): online,
    and the deepest things an operator does (a program push and a config change are validated recursively) answer."""
    from nodekit import esp32_frozen, make_node

    d = tmp_path / "stack1"
    vn = make_node(str(d), broker, "stack1", env={mpbuild.STACK_ENV: str(ESP32_C_STACK)},
                   **esp32_frozen(esp32_micropython, "112K"))
    op = Operator(broker.host, broker.port)
    steps = [{"at": "%02d:%02d" % (18 + i // 3, (i % 3) * 20), "offset_min": 0, "level": 10 * i} for i in range(10)]
    programs = {name: steps for name in ("default", "weekend", "holiday", "event")}
    calendar = [{"program": "weekend", "weekdays": [5, 6]}, {"program": "holiday", "dates": ["12-25"]}]
    try:
        vn.start()
        op.wait_for(lambda: op.status.get("stack1", {}).get("online"), 30)
        r = op.command("stack1", "program", timeout=10, programs=programs, calendar=calendar)
        assert r["ok"], r
        r = op.command("stack1", "config", timeout=10, set={"report": {"telemetry_s": 900}})
        assert r["ok"] and r["restart"] is False, r
        r = op.command("stack1", "get", timeout=10, what="config")
        assert r["ok"] and [s["level"] for s in r["config"]["programs"]["event"]] == [s["level"] for s in steps], r
        alive = vn.alive()
    finally:
        vn.stop()
        op.close()
    log = vn.read_log()
    assert alive and "recursion" not in log and "Traceback" not in log, log[-2000:]


# --- the virtual node's placement options (no binary needed) -------------------------------------------------------


def test_frozen_placement_refuses_a_flash_that_would_shadow_the_image(tmp_path):
    (tmp_path / "n" / "firmware").mkdir(parents=True)
    vn = VirtualNode(str(tmp_path / "n"), {}, {}, placement="frozen")
    with pytest.raises(ValueError, match="firmware would shadow the frozen modules"):
        vn.prepare()
    with pytest.raises(ValueError, match="placement must be one of files, frozen"):
        VirtualNode(str(tmp_path / "m"), placement="romfs-please")


# --- the build script (tools/mpbuild.py; no binary needed) ---------------------------------------------------------


def test_the_mirror_comes_from_the_machines_own_apt_sources(tmp_path):
    deb822 = tmp_path / "debian.sources"
    deb822.write_text("Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
                      "Types: deb\n# a comment\nURIs: http://mirror.example/debian\nSuites: bookworm\n")
    one_line = tmp_path / "sources.list"
    one_line.write_text("# deb http://commented.example/debian bookworm main\n"
                        "deb [arch=amd64] http://other.example/debian bookworm main\n")
    assert mpbuild.debian_mirror([str(deb822)]) == "http://mirror.example/debian"  # never the security archive
    assert mpbuild.debian_mirror([str(tmp_path / "missing"), str(one_line)]) == "http://other.example/debian"
    with pytest.raises(mpbuild.BuildError, match="no Debian mirror found"):
        mpbuild.debian_mirror([str(tmp_path / "missing")])


def test_apt_writes_only_into_its_own_state_folder(tmp_path):
    opts = mpbuild._apt_options(str(tmp_path))
    values = dict(o.split("=", 1) for o in opts if o != "-o")
    for key in ("Dir::Etc::sourcelist", "Dir::State::Lists", "Dir::Cache"):
        assert values[key].startswith(str(tmp_path)), (key, values)
    assert values["Dir::Etc::sourceparts"] == "/nonexistent" and values["Debug::NoLocking"] == "1"


def test_the_frozen_code_is_the_bundles_code():
    frozen = [t for t, _s in mpbuild.frozen_sources()]
    bundled = [rel[:-4] + ".py" for rel, _src, compiled in provision.device_sources() if compiled]
    assert frozen == bundled and "umqtt/simple.py" in frozen and "firmware/node.py" in frozen
    assert "drivers/sim.py" not in frozen and "boot.py" not in frozen


def test_staging_is_doc_stripped_and_named_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    src = tmp_path / "m.py"
    src.write_text('X = Field(1, doc="a description for the JSON Schema")\n')
    a = mpbuild._stage([("pkg/m.py", str(src))])
    staged = os.path.join(a, "pkg", "m.py")
    assert open(staged).read() == "X = Field(1)\n"
    t0 = os.path.getmtime(staged)
    assert mpbuild._stage([("pkg/m.py", str(src))]) == a and os.path.getmtime(staged) == t0  # reused, not rewritten
    src.write_text('X = Field(2, doc="a description for the JSON Schema")\n')
    assert mpbuild._stage([("pkg/m.py", str(src))]) != a


def test_a_changed_device_file_names_a_new_esp32_binary(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "repo"
    for d in ("firmware", "drivers", os.path.join("lib", "umqtt")):
        for name in os.listdir(os.path.join(ROOT, d)):
            if name.endswith(".py"):
                os.makedirs(root / d, exist_ok=True)
                (root / d / name).write_bytes(open(os.path.join(ROOT, d, name), "rb").read())
    before = mpbuild.esp32_key(str(root))
    version = root / "firmware" / "version.py"
    text = version.read_text()
    version.write_text(text + "\n# one more line\n")
    changed = mpbuild.esp32_key(str(root))
    version.write_text(text)
    assert changed != before and mpbuild.esp32_key(str(root)) == before
