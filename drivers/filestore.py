"""Flash files by name under one directory: read, atomic write (temp + rename), remove, and a wear counter."""

import json
import os

from firmware.compat import const

_ENOENT = const(2)
_COPY_CHUNK = const(256)
_MAX_NAME = const(64)
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_.-"


def check_name(name):
    """Raise ValueError unless `name` is a plain file name this store accepts ([a-z0-9_.-], no path, not ./..)."""
    if not isinstance(name, str) or not name or len(name) > _MAX_NAME or name in (".", ".."):
        raise ValueError("bad file name %r" % (name,))
    for c in name:
        if c not in _NAME_CHARS:
            raise ValueError("bad file name %r" % (name,))


def _sync(f):
    # Durability before the rename, by the best means each runtime has: CPython fsyncs the one file; ESP32
    # MicroPython has os.sync() (flushes the block device); the unix port has neither, and there a closed file
    # is in the host kernel's cache, which is as durable as the simulation needs.
    fileno = getattr(f, "fileno", None)
    fsync = getattr(os, "fsync", None)
    if fileno is not None and fsync is not None:
        fsync(fileno())
        return
    sync = getattr(os, "sync", None)
    if sync is not None:
        sync()


class FileStore:
    """Files named `name` in `root`. `write` is atomic: after a power cut a reader sees the old or the new content,
    never a mix — the data goes to `name.tmp` first and `os.rename` replaces the target in one step (LittleFS and
    POSIX rename overwrite atomically; FAT does not, which is why the ESP32 image uses LittleFS).
    `writes` counts completed writes so callers can keep a flash-wear budget."""

    def __init__(self, root="."):
        self.root = root
        self.writes = 0

    def path(self, name):
        check_name(name)
        if self.root in ("", "."):
            return name
        return self.root + "/" + name

    def read(self, name):
        """The file's bytes, or None when it does not exist. Other I/O errors propagate."""
        p = self.path(name)
        try:
            with open(p, "rb") as f:
                return f.read()
        except OSError as e:
            if e.args and e.args[0] == _ENOENT:
                return None
            raise

    def write(self, name, data):
        if isinstance(data, str):
            data = data.encode()
        self._replace(name, "wb", lambda f: f.write(data))

    def write_json(self, name, doc):
        """write(name, json.dumps(doc)) without the text in RAM: json.dump streams into the temp file, so a config
        of several KB needs no contiguous block on a fragmented heap. (CPython's json writes ASCII by default, so
        the text-mode file holds the same bytes on every runtime.)"""
        self._replace(name, "w", lambda f: json.dump(doc, f))

    def copy(self, src, dst):
        """Make `dst` a copy of `src` (atomically, through a small buffer). False when `src` does not exist."""
        try:
            fin = open(self.path(src), "rb")
        except OSError as e:
            if e.args and e.args[0] == _ENOENT:
                return False
            raise
        buf = bytearray(_COPY_CHUNK)

        def fill(f):
            while True:
                n = fin.readinto(buf)
                if not n:
                    return
                f.write(buf if n == len(buf) else memoryview(buf)[:n])

        try:
            self._replace(dst, "wb", fill)
        finally:
            fin.close()
        return True

    def _replace(self, name, mode, fill):
        """Write `name.tmp` with fill(file), make it durable, then rename it over `name`: old or new, never a mix."""
        p = self.path(name)
        tmp = p + ".tmp"
        with open(tmp, mode) as f:
            fill(f)
            f.flush()
            _sync(f)
        os.rename(tmp, p)
        self.writes += 1

    def remove(self, name):
        """Delete the file; a missing file is not an error (the wanted state is reached)."""
        p = self.path(name)
        try:
            os.remove(p)
        except OSError as e:
            if not (e.args and e.args[0] == _ENOENT):
                raise
