# runtimes: cpython micropython
"""drivers/filestore.py: named flash files with atomic replace, run on a real directory under /tmp."""

import os

from drivers.filestore import FileStore, check_name
from mini import raises


def _tmpdir():
    # No tempfile module on MicroPython: a random name under /tmp, made with os.mkdir.
    name = "/tmp/fs_test_" + "".join("%02x" % b for b in os.urandom(6))
    os.mkdir(name)
    return name


def _rmtree(d):
    for n in os.listdir(d):
        p = d + "/" + n
        try:
            os.remove(p)
        except OSError:
            _rmtree(p)
    os.rmdir(d)


def test_missing_file_reads_none():
    d = _tmpdir()
    try:
        s = FileStore(d)
        assert s.read("nothing.json") is None
        assert s.writes == 0
    finally:
        _rmtree(d)


def test_write_read_roundtrip_all_byte_values():
    d = _tmpdir()
    try:
        s = FileStore(d)
        data = bytes(range(256)) * 3
        s.write("blob.bin", data)
        assert s.read("blob.bin") == data
        assert s.writes == 1
        # The bytes really are in the file of that name (not only in a cache of the object).
        with open(d + "/blob.bin", "rb") as f:
            assert f.read() == data
    finally:
        _rmtree(d)


def test_str_is_stored_as_utf8():
    d = _tmpdir()
    try:
        s = FileStore(d)
        s.write("t.txt", "lamp \u00b0C")
        assert s.read("t.txt") == "lamp \u00b0C".encode()
    finally:
        _rmtree(d)


def test_overwrite_replaces_and_leaves_no_temp_file():
    d = _tmpdir()
    try:
        s = FileStore(d)
        s.write("state.json", b'{"a": 1, "long": "xxxxxxxxxxxxxxxx"}')
        s.write("state.json", b'{"a": 2}')
        assert s.read("state.json") == b'{"a": 2}'  # shorter content: no tail of the old file left
        assert sorted(os.listdir(d)) == ["state.json"]
        assert s.writes == 2
    finally:
        _rmtree(d)


def test_stale_temp_from_a_power_cut_is_ignored_then_replaced():
    d = _tmpdir()
    try:
        s = FileStore(d)
        s.write("cfg.json", b"old")
        # A power cut during the next write leaves a half-written temp file beside the intact target.
        with open(d + "/cfg.json.tmp", "wb") as f:
            f.write(b"ne")
        assert s.read("cfg.json") == b"old"
        s.write("cfg.json", b"new")
        assert s.read("cfg.json") == b"new"
        assert "cfg.json.tmp" not in os.listdir(d)
    finally:
        _rmtree(d)


def test_remove_existing_and_missing():
    d = _tmpdir()
    try:
        s = FileStore(d)
        s.write("x.json", b"1")
        s.remove("x.json")
        assert s.read("x.json") is None
        assert os.listdir(d) == []
        s.remove("x.json")  # already gone: no error
    finally:
        _rmtree(d)


def test_names_are_validated():
    for bad in ("", ".", "..", "a/b", "../etc", "/abs", "UPPER.json", "sp ace", "semi;colon", "x" * 65, None, 5):
        raises(ValueError, check_name, bad)
    for good in ("config.json", "config.good.json", "boot.json", "a-b_c.1", "x" * 64):
        check_name(good)
    d = _tmpdir()
    try:
        s = FileStore(d)
        raises(ValueError, s.write, "../escape.json", b"x")
        raises(ValueError, s.read, "sub/x")
        raises(ValueError, s.remove, "..")
        assert s.writes == 0
        assert os.listdir(d) == []
    finally:
        _rmtree(d)


def test_other_io_errors_are_not_hidden_as_missing():
    d = _tmpdir()
    try:
        os.mkdir(d + "/adir")
        s = FileStore(d)
        raises(OSError, s.read, "adir")  # a directory is not "no such file"
    finally:
        _rmtree(d)


def test_root_dot_means_current_directory_names():
    s = FileStore(".")
    assert s.path("config.json") == "config.json"
    assert FileStore("/data").path("a.json") == "/data/a.json"
