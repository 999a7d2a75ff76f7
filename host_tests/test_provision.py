"""tools/provision.py: bundles from an inventory, the dry-run verification, refused rows, flash command lines."""

import base64
import io
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))

import provision  # noqa: E402

from firmware import config as configmod  # noqa: E402

CA_DER = bytes(range(40))  # stands for a certificate: provision only re-encodes it
CSV = """id,wifi_ssid,wifi_password,brokers,mqtt_user,mqtt_password,ca,lat,lon,groups
pdg-0001,city-iot,s3cret-wifi,mqtt.padang.example:8883;10.0.0.2:8883,lamps,env:LAMP_PW,ca.pem,-0.951,100.352,jl-sudirman;district-1
pdg-0002,city-iot,s3cret-wifi,mqtt.padang.example:8883,lamps,env:LAMP_PW,ca.pem,-0.949,100.353,jl-sudirman
pdg-0003,city-iot,s3cret-wifi,mqtt.padang.example:8883,lamps,env:LAMP_PW,,-0.950,100.360,pantai
"""
BASE = {"report": {"telemetry_s": 600}, "mqtt": {"prefix": "padang/lights", "keepalive_s": 60}}
ENV = {"LAMP_PW": "mqtt-password"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("prov")
    pem = "-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n" % base64.b64encode(CA_DER).decode()
    (d / "ca.pem").write_text(pem)
    inv = d / "nodes.csv"
    inv.write_text(CSV)
    out = d / "bundles"
    result = provision.build(str(inv), str(out), BASE, env=ENV)
    return d, out, result


def test_build_three_bundles_with_merged_validated_configs(built):
    d, out, result = built
    assert [n for n, _ in result] == ["pdg-0001", "pdg-0002", "pdg-0003"]
    cfg = json.loads((out / "pdg-0001" / "config.json").read_text())
    assert cfg["node"] == {"id": "pdg-0001", "groups": ["jl-sudirman", "district-1"]}
    assert cfg["mqtt"]["brokers"] == [{"host": "mqtt.padang.example", "port": 8883}, {"host": "10.0.0.2", "port": 8883}]
    assert cfg["mqtt"]["password"] == "mqtt-password" and cfg["hw"]["wifi"]["ssid"] == "city-iot"
    assert base64.b64decode(cfg["mqtt"]["tls"]["ca"]) == CA_DER  # PEM in the inventory → base64 DER on the node
    assert cfg["report"]["telemetry_s"] == 600 and cfg["mqtt"]["prefix"] == "padang/lights"  # the base config
    assert abs(cfg["site"]["lat"] - -0.951) < 1e-9
    assert configmod.validate(cfg) == cfg  # what the node will load, unchanged by its own validation
    cfg3 = json.loads((out / "pdg-0003" / "config.json").read_text())
    assert cfg3["mqtt"]["tls"] is None and cfg3["node"]["groups"] == ["pantai"]
    files = result[0][1]["files"]
    assert "drivers/sim.mpy" not in files and "drivers/esp32.mpy" in files
    assert "boot.py" in files and "main.py" in files and "umqtt/simple.mpy" in files
    assert not any(f.endswith(".py") and f not in ("boot.py", "main.py") for f in files)
    with open(os.path.join(ROOT, "main.py"), "rb") as f:
        assert (out / "pdg-0002" / "main.py").read_bytes() == f.read()
    assert (out / "pdg-0002" / "firmware" / "node.mpy").read_bytes()[:2] == b"M\x06"
    # Same code in every bundle, only config.json and the manifest differ.
    m2 = json.loads((out / "pdg-0002" / "manifest.json").read_text())
    assert m2["files"]["firmware/node.mpy"] == files["firmware/node.mpy"]
    assert m2["files"]["config.json"] != files["config.json"]


def test_dry_run_passes_and_prints_the_budget(built):
    _, out, _ = built
    buf = io.StringIO()
    rc = provision.main(["verify"] + [str(out / n) for n in ("pdg-0001", "pdg-0002", "pdg-0003")], out=buf)
    assert rc == 0, buf.getvalue()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 3 and all(": ok (pdg-000" in ln and "of 1048576 budget)" in ln for ln in lines)
    total = json.loads((out / "pdg-0001" / "manifest.json").read_text())["total_bytes"]
    assert 20000 < total < provision.DEFAULT_FLASH_BUDGET


def test_tampered_or_stray_file_fails_the_dry_run(built, tmp_path):
    _, out, _ = built
    import shutil

    b = tmp_path / "b"
    shutil.copytree(out / "pdg-0002", b)
    p = b / "firmware" / "control.mpy"
    data = bytearray(p.read_bytes())
    data[-1] ^= 0x01
    p.write_bytes(bytes(data))
    (b / "extra.py").write_text("print('hi')\n")
    os.remove(b / "umqtt" / "simple.mpy")
    buf = io.StringIO()
    rc = provision.main(["flash", str(b), "--port", "/dev/ttyUSB0", "--dry-run"], out=buf)
    text = buf.getvalue()
    assert rc == 1 and "FAILED" in text
    assert "firmware/control.mpy: sha256 mismatch with the manifest (tampered or corrupted)" in text
    assert "extra.py: not in the manifest" in text
    assert "umqtt/simple.mpy: missing" in text
    assert "mpremote" not in text  # nothing to flash from a bad bundle
    # A budget the bundle does not fit into, and a config edited by hand into invalidity.
    shutil.rmtree(b)
    shutil.copytree(out / "pdg-0003", b)
    assert provision.verify_bundle(str(b)) == []
    assert any("exceeds the flash budget of 1000 bytes" in p for p in provision.verify_bundle(str(b), 1000))
    (b / "config.json").write_text(json.dumps({"node": {"id": "pdg-0003"}, "lamp": {"min_level": 900}}))
    problems = provision.verify_bundle(str(b))
    assert any(p.startswith("config.json: invalid: lamp.min_level") for p in problems), problems


def _inv(tmp_path, text, ext="csv"):
    p = tmp_path / ("inv%d.%s" % (len(list(tmp_path.iterdir())), ext))
    p.write_text(text)
    return str(p)


def test_invalid_rows_are_refused_naming_row_and_field(tmp_path):
    head = "id,wifi_ssid,brokers,groups\n"
    bad_id = _inv(tmp_path, head + "pdg-0001,net,b:1883,g\nPDG 2,net,b:1883,g\n")
    with pytest.raises(provision.InventoryError) as e:
        provision.node_configs(bad_id, env={})
    assert "row 2 (line 3) (id 'PDG 2'): id (node.id:" in str(e.value)
    no_wifi = _inv(tmp_path, head + "pdg-0001,net,b:1883,g\npdg-0002,,b:1883,g\n")
    with pytest.raises(provision.InventoryError) as e:
        provision.node_configs(no_wifi, env={})
    assert "row 2 (line 3) (id 'pdg-0002'): wifi_ssid: required" in str(e.value)
    dup = _inv(tmp_path, head + "pdg-0001,net,b:1883,g\npdg-0001,net,b:1883,g\n")
    with pytest.raises(provision.InventoryError, match="row 2 .*id: 'pdg-0001' already used by row 1"):
        provision.node_configs(dup, env={})
    reserved = _inv(tmp_path, json.dumps([{"id": "all", "wifi_ssid": "net"}]), "json")
    with pytest.raises(provision.InventoryError, match=r"nodes\[0\] \(id 'all'\): id \(node.id: 'all' is reserved"):
        provision.node_configs(reserved, env={})
    no_env = _inv(tmp_path, "id,wifi_ssid,mqtt_password\npdg-0001,net,env:NOPE\n")
    with pytest.raises(provision.InventoryError, match="mqtt_password: environment variable NOPE is not set"):
        provision.node_configs(no_env, env={})
    bad_lat = _inv(tmp_path, "id,wifi_ssid,lat\npdg-0001,net,95\n")
    with pytest.raises(provision.InventoryError, match=r"row 1 .*lat \(site.lat:"):
        provision.node_configs(bad_lat, env={})
    # Through the CLI: exit 2 and the same message, nothing built.
    buf = io.StringIO()
    out = tmp_path / "never"
    assert provision.main(["build", "--inventory", no_wifi, "--out", str(out)], out=buf) == 2
    assert "wifi_ssid: required" in buf.getvalue() and not out.exists()


def test_flash_command_lines(built):
    _, out, _ = built
    b = str(out / "pdg-0001")
    cmds = provision.flash_commands(b, "/dev/ttyUSB0")
    assert cmds == [
        (["mpremote", "connect", "/dev/ttyUSB0", "fs", "cp", "-r", "drivers", "firmware", "umqtt", "config.json",
          "manifest.json", ":"], os.path.abspath(b)),
        (["mpremote", "connect", "/dev/ttyUSB0", "fs", "cp", "boot.py", "main.py", ":"], os.path.abspath(b)),
        (["mpremote", "connect", "/dev/ttyUSB0", "reset"], None),
    ]
    cmds = provision.flash_commands(b, "COM4", image="fw/ESP32_GENERIC.bin", chip="esp32", baud=921600)
    assert cmds[0] == (["esptool", "--chip", "esp32", "--port", "COM4", "erase_flash"], None)
    assert cmds[1] == (["esptool", "--chip", "esp32", "--port", "COM4", "--baud", "921600", "write_flash", "-z",
                        "0x1000", os.path.abspath("fw/ESP32_GENERIC.bin")], None)
    assert cmds[2][0][:6] == ["mpremote", "connect", "COM4", "fs", "cp", "-r"]
    s3 = provision.flash_commands(b, "/dev/ttyACM0", image="s3.bin", chip="esp32s3")
    assert s3[1][0][-2] == "0x0"
    wipe = provision.flash_commands(b, "/dev/ttyUSB0", wipe=True)
    assert wipe[0][0] == ["mpremote", "connect", "/dev/ttyUSB0", "fs", "rm", "-r", ":drivers", ":firmware", ":umqtt"]
    buf = io.StringIO()
    assert provision.main(["flash", b, "--port", "/dev/ttyUSB0", "--dry-run"], out=buf) == 0
    lines = buf.getvalue().splitlines()
    assert lines[0].endswith(": ok (pdg-0001, %d files, %d bytes of 1048576 budget)" % (
        len(json.loads(open(os.path.join(b, "manifest.json")).read())["files"]),
        json.loads(open(os.path.join(b, "manifest.json")).read())["total_bytes"]))
    assert lines[1] == "(cd %s && mpremote connect /dev/ttyUSB0 fs cp -r drivers firmware umqtt config.json " \
                       "manifest.json :)" % os.path.abspath(b)
    assert lines[-1] == "mpremote connect /dev/ttyUSB0 reset"


def test_flash_with_romfs_installs_the_image_and_no_code_files(built):
    _, out, _ = built
    b = str(out / "pdg-0001")
    image = str(out / provision.ROMFS_FILE)
    mp = ["mpremote", "connect", "/dev/ttyUSB0"]
    assert provision.flash_commands(b, "/dev/ttyUSB0", romfs=image) == [
        (mp + ["fs", "rm", "-r", ":drivers", ":firmware", ":umqtt"], os.path.abspath(b)),  # would shadow /rom
        (mp + ["romfs", "deploy", os.path.abspath(image)], None),
        (mp + ["fs", "cp", "config.json", "manifest.json", ":"], os.path.abspath(b)),
        (mp + ["fs", "cp", "boot.py", "main.py", ":"], os.path.abspath(b)),
        (mp + ["reset"], None),
    ]
    buf = io.StringIO()
    assert provision.main(["flash", b, "--port", "/dev/ttyUSB0", "--dry-run", "--romfs", image], out=buf) == 0
    assert "mpremote connect /dev/ttyUSB0 romfs deploy %s" % os.path.abspath(image) in buf.getvalue()


def test_flash_for_the_frozen_city_image_copies_no_code(built):
    _, out, _ = built
    b = str(out / "pdg-0001")
    mp = ["mpremote", "connect", "/dev/ttyUSB0"]
    assert provision.flash_commands(b, "/dev/ttyUSB0", frozen=True) == [
        (mp + ["fs", "rm", "-r", ":drivers", ":firmware", ":umqtt"], os.path.abspath(b)),  # would shadow .frozen
        (mp + ["fs", "cp", "config.json", "manifest.json", ":"], os.path.abspath(b)),
        (mp + ["fs", "cp", "boot.py", "main.py", ":"], os.path.abspath(b)),
        (mp + ["reset"], None),
    ]
    buf = io.StringIO()
    assert provision.main(["flash", b, "--port", "/dev/ttyUSB0", "--dry-run", "--frozen"], out=buf) == 0
    assert "fs cp -r" not in buf.getvalue()  # no code folder goes onto the filesystem
    assert provision.main(["flash", b, "--port", "/dev/ttyUSB0", "--dry-run", "--frozen", "--romfs", "x"],
                          out=io.StringIO()) == 2


def test_unpinned_umqtt_is_refused(tmp_path):
    fake = tmp_path / "root"
    (fake / "lib" / "umqtt").mkdir(parents=True)
    (fake / "lib" / "umqtt" / "simple.py").write_text("# not the pinned module\n")
    with pytest.raises(provision.BuildError, match="sha256 .* pinned 8555d2f6"):
        provision.check_umqtt(str(fake))


# --- the ROMFS image and the stripped schema descriptions -----------------------------------------------------------

ROMFS_CHECK = """
import json, sys, vfs
buf = bytearray(open(sys.argv[1], "rb").read())
vfs.mount(vfs.VfsRom(buf), "/rom")
sys.path[:] = ["/rom", ".frozen"]  # nothing but the image: a module missing from it fails the import
import os
from firmware import config, node, startup
from drivers import filestore  # drivers.esp32 needs the machine module: only listed
listed = os.listdir("/rom/drivers")
print(config.__file__, node.__file__, "esp32.mpy" in listed, "sim.mpy" in listed)
print(json.dumps(config.defaults()))
try:
    config.validate({"photocell": {"on_lux": 80, "off_lux": 50}})
except config.Invalid as e:
    print("refused:", e)
"""


def test_romfs_image_runs_the_node_code_under_micropython(built, tmp_path):
    """The image `build` writes next to the bundles mounts under the real MicroPython (VfsRom, as an ESP32 with a
    romfs partition mounts it), every module imports from it alone, and the stripped code validates exactly as the
    source does: same defaults, same refusal text."""
    from vnode import micropython_binary

    _d, out, _result = built
    image = out / provision.ROMFS_FILE
    assert image.read_bytes().startswith(b"\xd2\xcd\x31")  # the ROMFS header mpremote checks before deploying
    script = tmp_path / "check.py"
    script.write_text(ROMFS_CHECK)
    r = subprocess.run([micropython_binary(), str(script), str(image)], cwd=str(tmp_path), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "/rom/firmware/config.mpy /rom/firmware/node.mpy True False"
    assert json.loads(lines[1]) == json.loads(json.dumps(configmod.defaults()))
    with pytest.raises(configmod.Invalid) as e:
        configmod.validate({"photocell": {"on_lux": 80, "off_lux": 50}})
    assert lines[2] == "refused: %s" % e.value


def test_strip_docs_removes_descriptions_and_keeps_line_numbers():
    src = ('X = Dict({\n    "a": Int(0, 9, 1, doc="first\\n line"),\n    "b": Str(4, doc="multi "\n'
           '                      "line"),\n    "c": Bool(doc="only arg"),\n}, doc="whole")\n'
           'def f():\n    raise ValueError("line 8")\n')
    out = provision.strip_docs(src)
    assert "doc=" not in out
    assert out.count("\n") == src.count("\n")
    assert out.splitlines()[7] == '    raise ValueError("line 8")'
    ns = {"Dict": lambda f, **k: (f, k), "Int": lambda *a, **k: (a, k), "Str": lambda *a, **k: (a, k),
          "Bool": lambda *a, **k: (a, k)}
    exec(compile(out, "x.py", "exec"), ns)
    assert ns["X"] == ({"a": ((0, 9, 1), {}), "b": ((4,), {}), "c": ((), {})}, {})


def test_every_device_file_loses_only_its_descriptions():
    for rel in provision.device_sources():
        src = rel[1]
        if not src.endswith(".py"):
            continue
        with open(src, encoding="utf-8") as f:
            text = f.read()
        out = provision.strip_docs(text)
        assert out.count("\n") == text.count("\n"), src
        assert "doc=" not in out.replace('doc=""', ""), src  # only parameter defaults in def lines remain
