"""Over-the-air update agent: signed manifest, chunks streamed to the spare slot, verify, atomic switch, trial.

The flash holds up to three images: the factory image (the top-level firmware/, drivers/, lib/ that were flashed
by cable) and two slots, `slot_a/` and `slot_b/`, in the node's data directory. `ota.json` says which one runs
(`active`), whether it is on trial, and which one to fall back to (`previous`); boot.py reads it with nothing but
`os` and `json` and puts the active slot at the front of sys.path before any firmware module is imported.

An update, as the node sees it (docs/OTA.md has the whole story):
1. `begin(manifest, sig)`: the manifest lists every file (path, size, sha256) and the version; it is HMAC-signed
   with the fleet's update key. Checked: signature, paths (no traversal), sizes, room on flash, version not older
   than the running one unless forced. The spare slot is wiped and `stage.json` (manifest + signature) written
   there, so a transfer survives a reboot. Beginning again with the same signature resumes instead of wiping.
2. `chunk(payload)`: binary `CHUNK_HEADER` (format, file index, session, offset) + up to 4 KB of data, appended
   straight to the file in the slot. Only the next expected byte is accepted (the reply names it otherwise), so
   the sender can always realign. Each file's sha256 is computed as it arrives and checked at its last byte.
3. `commit()`: every file re-read from flash and hashed (the flash is what will run, not what passed through RAM),
   `slot/manifest.json` written (the slot is now complete), then `ota.json` replaced in one rename — the switch.
   The node resets. A power cut before that rename leaves the old image active; after it, the new one on trial.
4. Trial: boot.py counts trial boots; the node calls `confirm_if_due(connected, uptime_s)` from its control loop,
   which confirms once the broker is reached, the loop ran `confirm_s` and the update commands load (a version
   that could not take the next update must not stay), or rolls back after `trial_max_s`.
   A second boot without confirmation makes boot.py roll back by itself. Either way the outcome is kept in
   ota.json and `pending_report()` hands it to the node once, as an event.

Memory: one chunk (the MQTT payload, <= 4 KB + 8) and one sha256 state; files never sit in RAM. The manifest
as the command brought it (a dict and three strings per file: 11 KB for a 51-file image on the esp32-shaped build)
lives only while ota_begin runs: the transfer reads its file list from flash (`_Files`, the slot's stage.idx),
and stage.json keeps the signed original for a resume after a reboot.
"""

import binascii
import hashlib
import json
import os
import struct

from firmware import cold
from firmware.compat import const
from firmware.otadoc import MANIFEST_SCHEMA, MAX_FILE_BYTES, MAX_FILES, OTA_FILE, SEGMENT_CHARS, leaves_work  # noqa: F401
from firmware.schema import Invalid

SLOTS = ("slot_a", "slot_b")
FACTORY = "factory"
STAGE_FILE = "stage.json"  # inside the slot being filled: the manifest and signature of the transfer
INDEX_FILE = "stage.idx"  # next to it: the manifest's file list, a line per file, read as the transfer goes
SLOT_MANIFEST = "manifest.json"  # inside a slot: written last at commit; boot.py uses no slot without it
UPDATE_COMMANDS = "firmware.cmd_ota"  # the module that runs ota_begin/commit: a new version must load it to confirm

CHUNK_HEADER = ">BBHI"  # format (1), file index, session, offset — big-endian, 8 bytes
CHUNK_FORMAT = const(1)
HEADER_LEN = const(8)
MAX_CHUNK = const(4096)  # data bytes per chunk: with the header well inside the node's 8 KB max_payload
_SIG_DOMAIN = b"streetlight-ota-manifest-1\n"  # the signed bytes can never be mistaken for a signed command
_FREE_MARGIN = const(16384)  # bytes left free on flash after staging (config/state files must still be writable)
_BLOCK = const(512)  # read size when hashing files back from flash
_EEXIST = const(17)
_ENOENT = const(2)





def parse_version(v):
    """'1.2.3' → (1, 2, 3); ValueError for anything else."""
    parts = v.split(".") if isinstance(v, str) else ()
    if len(parts) != 3:
        raise ValueError("version must be MAJOR.MINOR.PATCH")
    out = []
    for p in parts:
        if not p or len(p) > 5 or not p.isdigit():
            raise ValueError("version must be MAJOR.MINOR.PATCH")
        out.append(int(p))
    return tuple(out)


def check_path(path):
    """Raise ValueError unless `path` is a safe relative file path inside a slot (2..4 segments, .py/.mpy)."""
    segs = path.split("/")
    if len(segs) < 2 or len(segs) > 4:
        raise ValueError("%s: must be dir/.../file" % path)
    for i, s in enumerate(segs):
        last = i == len(segs) - 1
        name = s
        if last:
            if s.endswith(".py"):
                name = s[:-3]
            elif s.endswith(".mpy"):
                name = s[:-4]
            else:
                raise ValueError("%s: only .py and .mpy files" % path)
        if not name or len(name) > 32:
            raise ValueError("%s: bad segment" % path)
        for c in name:
            if c not in SEGMENT_CHARS:  # no '.', so no '..', no hidden names, no second extension
                raise ValueError("%s: bad character %r" % (path, c))


def check_manifest(manifest, path="manifest"):
    """Schema + semantic checks; returns the normalised manifest or raises Invalid naming the field."""
    return check_files(MANIFEST_SCHEMA.check(manifest, path), path)


def check_files(m, path="manifest"):
    """The checks of a schema-valid manifest the schema cannot make (version order, paths, no file twice)."""
    try:
        parse_version(m["version"])
    except ValueError as e:
        raise Invalid(path + ".version", str(e))
    seen = set()
    for i, f in enumerate(m["files"]):
        try:
            check_path(f["path"])
        except ValueError as e:
            raise Invalid("%s.files[%d].path" % (path, i), str(e))
        if f["path"] in seen:
            raise Invalid("%s.files[%d].path" % (path, i), "listed twice")
        seen.add(f["path"])
    return m


def manifest_parts(manifest):
    """The bytes the update key signs, a line at a time: one line per field, so no JSON formatting can make two
    readings. The node hashes them as they come (a 50-file manifest joined would be 4 KB, made three times over)."""
    yield _SIG_DOMAIN
    yield ("format %d\nversion %s\n" % (manifest.get("format", 1), manifest["version"])).encode()
    for f in manifest["files"]:
        yield ("%s %d %s\n" % (f["path"], f["size"], f["sha256"])).encode()


def manifest_bytes(manifest):
    """manifest_parts joined: what the host tools sign."""
    return b"".join(manifest_parts(manifest))


def sign_manifest(manifest, key, hmac_fn):
    """The manifest signature as 64 hex digits (used by tools/ota.py; the node only verifies)."""
    return _hex(hmac_fn(key, manifest_bytes(manifest)))


def session_of(sig):
    """A 16-bit tag of a transfer carried by every chunk: chunks of an older transfer are never applied."""
    return int(sig[:4], 16)


def _hex(b):
    return binascii.hexlify(b).decode()


def _same(a, b):
    # Constant-time: how long the comparison takes must not tell how many leading characters were right.
    if len(a) != len(b):
        return False
    r = 0
    for i in range(len(a)):
        r |= ord(a[i]) ^ ord(b[i])
    return r == 0


def _is_dir(p):
    try:
        return os.stat(p)[0] & 0x4000 != 0
    except OSError:
        return False


def _size(p):
    try:
        return os.stat(p)[6]
    except OSError:
        return -1


def _rmtree(p):
    try:
        mode = os.stat(p)[0]
    except OSError:
        return
    if mode & 0x4000:
        for name in os.listdir(p):
            _rmtree(p + "/" + name)
        os.rmdir(p)
    else:
        os.remove(p)


def _mkdirs(p):
    parts = p.split("/")
    cur = parts[0]  # "" for an absolute path
    for i in range(len(parts)):
        if i:
            cur = cur + "/" + parts[i]
        if not parts[i]:
            continue
        try:
            os.mkdir(cur)
        except OSError as e:
            if not (e.args and e.args[0] == _EEXIST):
                raise


def _remove(p):
    try:
        os.remove(p)
    except OSError as e:
        if not (e.args and e.args[0] == _ENOENT):
            raise


def _write_atomic(p, doc):
    """Write the JSON document `doc` to path p: temp + rename, the same discipline as drivers.filestore, which this
    module cannot import (slots live in subdirectories, and firmware/ must not depend on drivers/). json.dump
    streams into the file: a 50-file manifest is 6 KB of text that never needs to be whole in RAM."""
    tmp = p + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.rename(tmp, p)


def _read_json(p):
    try:
        with open(p, "rb") as f:
            doc = json.loads(f.read())
        return doc if isinstance(doc, dict) else None
    except (OSError, ValueError):
        return None


def _update_path_broken():
    """Why the next update could not be received (its command module does not load), or None. Checked before a
    trial is confirmed: the module is cold (firmware/cold.py), so nothing else would have loaded it yet."""
    from firmware import cold

    try:
        cold.load(UPDATE_COMMANDS)
    except Exception as e:  # noqa: BLE001 — whatever stops it loading (SyntaxError, ImportError...) means: roll back
        return "update commands do not load: %r" % (e,)
    finally:
        cold.drop(UPDATE_COMMANDS)
    return None


def running_version():
    from firmware.version import VERSION  # the slot's own version.py (boot.py put the slot first on sys.path)

    return VERSION


class _Files:
    """A checked manifest's file list, on flash for the length of a transfer (`INDEX_FILE` in the slot, one line
    per file: size, sha256, path). RAM holds only the entry of the file being received: as parsed JSON (a dict, a
    path and a 64-digit hex string per file) a 51-file image took 11 KB of the heap for the whole transfer, and a
    packed copy needs runs of 1-2 KB that a fragmented heap may not have."""

    def __init__(self, index_path, files):
        """Write the index for `files` (the manifest's list), line by line."""
        self._p = index_path
        self.n = len(files)
        self.total = 0
        tmp = index_path + ".tmp"
        with open(tmp, "w") as f:
            for x in files:
                f.write("%d %s %s\n" % (x["size"], x["sha256"], x["path"]))
                self.total += x["size"]
        os.rename(tmp, index_path)
        self._i = -1
        self._entry = None

    def entries(self):
        """(index, size, digest, path) for every file, in order, read from flash as they are needed. Callers run it
        to the end (a generator left midway would keep the file open until the GC finds it)."""
        with open(self._p) as f:
            for i in range(self.n):
                yield (i,) + _index_line(f.readline())

    def entry(self, i):
        """(size, digest, path) of file i; the last one asked for is kept (every chunk of a file asks again)."""
        if i != self._i:
            with open(self._p) as f:
                for _ in range(i):
                    f.readline()
                self._entry = _index_line(f.readline())
            self._i = i
        return self._entry

    def bytes_before(self, k):
        """The sizes of files 0..k-1 added up."""
        n = 0
        with open(self._p) as f:
            for _ in range(min(k, self.n)):
                n += int(f.readline().split(" ", 1)[0])
        return n


def _index_line(line):
    size, sha, path = line.rstrip("\n").split(" ", 2)
    return int(size), binascii.unhexlify(sha), path


class _Transfer:
    """The spare slot being filled: what it will hold, its signature, and the position of the next expected byte."""

    def __init__(self, slot, manifest, sig, force, index_path):
        self.slot = slot
        self.version = manifest["version"]
        self.files = _Files(index_path, manifest["files"])
        self.sig = sig
        self.force = force
        self.session = session_of(sig)
        self.file = 0
        self.offset = 0
        self.hash = None  # sha256 of file[self.file] up to self.offset

    def total(self):
        return self.files.total

    def done_bytes(self):
        return self.files.bytes_before(self.file) + self.offset

    def complete(self):
        return self.file >= self.files.n


class OtaAgent:
    """The node's side of an update. `store_root`: the data directory ("." on the node); `cfg_ota`: the validated
    "ota" config section; `update_key`: key text (or bytes) or None; `hmac_fn(key, msg)` → 32-byte digest (msg:
    bytes, or an iterable of bytes pieces; firmware.signing.hmac_sha256); `log(text)` or None. After `commit()`
    (or a rollback decided here), `reset_wanted` is True: the node then resets as it does for a requested reboot."""

    def __init__(self, store_root, cfg_ota, update_key, hmac_fn, log=None):
        self.root = store_root if store_root not in ("", ".") else ""
        self.cfg = cfg_ota
        if isinstance(update_key, str):
            update_key = cold.call("firmware.signing", "key_bytes", update_key)
        self.key = update_key
        self.hmac_fn = hmac_fn
        self._log = log
        self.reset_wanted = False
        self._t = None  # _Transfer, loaded lazily (a transfer may have been interrupted by a reboot)
        self._t_checked = False
        self._buf = None
        self.doc = _read_json(self._p(OTA_FILE)) or {}
        active = self.active()
        if active != FACTORY:
            # A slot that runs is no transfer: its stage.json (left when power failed right after the switch)
            # must not make it look like a staged image once it is the spare slot again.
            _remove(self._p(active + "/" + STAGE_FILE))
            _remove(self._p(active + "/" + INDEX_FILE))

    # --- paths and state -------------------------------------------------------------------------------------------

    def _p(self, name):
        return self.root + "/" + name if self.root else name

    def idle(self):
        """Nothing left to do: no transfer held, no trial, no reset wanted, no outcome to report. The node lets the
        agent go then (firmware/node.py); a transfer left on flash is found again by the next agent."""
        return self._t is None and not self.reset_wanted and not leaves_work(self.doc)

    def log(self, text):
        if self._log is not None:
            self._log("ota: " + text)

    def active(self):
        a = self.doc.get("active")
        return a if a in SLOTS else FACTORY

    def spare(self):
        return "slot_b" if self.active() == "slot_a" else "slot_a"

    def on_trial(self):
        return self.doc.get("trial") is True

    def version(self):
        return running_version()

    def _save(self):
        _write_atomic(self._p(OTA_FILE), self.doc)

    def _reply(self, cmd, ok=True, error=None, **fields):
        r = {"id": "ota", "ok": ok, "cmd": cmd}
        if error is not None:
            r["error"] = error
        for k in fields:
            r[k] = fields[k]
        return r

    def _position(self, t):
        return {"session": t.session, "file": t.file, "offset": t.offset, "complete": t.complete()}

    # --- the transfer ------------------------------------------------------------------------------------------------

    def _transfer(self):
        """The transfer in progress (after a reboot: rebuilt from the spare slot's stage.json and file sizes)."""
        if self._t is None and not self._t_checked:
            self._t_checked = True
            slot = self.spare()
            doc = _read_json(self._p(slot + "/" + STAGE_FILE))
            if doc is not None and self.key is not None:
                try:
                    m = check_manifest(doc.get("manifest"))
                    sig = doc.get("sig")
                    if isinstance(sig, str) and len(sig) == 64 and self._sig_ok(m, sig):
                        t = _Transfer(slot, m, sig, doc.get("force") is True, self._p(slot + "/" + INDEX_FILE))
                        self._resume(t)
                        self._skip_empty(t)  # a cut just before an empty file was created: create it now
                        self._t = t
                except (Invalid, ValueError, OSError) as e:
                    self.log("stale staging dropped: %s" % e)
        return self._t

    def _resume(self, t):
        # Files are filled in order, so the first file shorter than its size is where the transfer stopped. A file
        # longer than it should be (cannot happen, but flash is flash) is started again.
        t.file, t.offset, t.hash = t.files.n, 0, None
        for i, size, _, path in t.files.entries():
            if t.file < t.files.n:
                continue  # found: the rest is read only to close the index
            p = self._p(t.slot + "/" + path)
            n = _size(p)
            if n == size:
                continue
            if n < 0 or n > size:
                _remove(p)
                n = 0
            t.file, t.offset = i, n
            t.hash = self._hash_file(p, n)

    def _hash_file(self, p, n):
        """sha256 of the first n bytes of file p, read in small blocks."""
        h = hashlib.sha256()
        if n <= 0:
            return h
        if self._buf is None:
            self._buf = bytearray(_BLOCK)
        buf = self._buf
        mv = memoryview(buf)
        with open(p, "rb") as f:
            while n > 0:
                k = f.readinto(buf)
                if not k:
                    break
                k = min(k, n)
                h.update(mv[:k])
                n -= k
        return h

    def _sig_ok(self, manifest, sig):
        want = _hex(self.hmac_fn(self.key, manifest_parts(manifest)))
        return _same(want, sig)

    def begin(self, manifest, sig, force=False, schema_checked=False):
        """Check a signed manifest and prepare the spare slot; the reply says where the sender starts.
        schema_checked: the ota_begin command's schema already normalised it (no second copy of a 50-file tree)."""
        cmd = "ota_begin"
        if self.key is None:
            return self._reply(cmd, False, "no update key configured")
        if self.on_trial():
            return self._reply(cmd, False, "the running version is on trial: wait for it to confirm")
        try:
            m = check_files(manifest) if schema_checked else check_manifest(manifest)
        except Invalid as e:
            return self._reply(cmd, False, str(e))
        if not isinstance(sig, str) or len(sig) != 64:
            return self._reply(cmd, False, "bad manifest signature")
        if not self._sig_ok(m, sig):
            return self._reply(cmd, False, "bad manifest signature")
        running = self.version()
        if parse_version(m["version"]) < parse_version(running) and not force:
            return self._reply(cmd, False, "version %s is older than the running %s (force to downgrade)" %
                               (m["version"], running))
        total = sum(f["size"] for f in m["files"])
        if total > self.cfg["max_bytes"]:
            limit = self.cfg["max_bytes"]
            return self._reply(cmd, False, "update of %d bytes exceeds ota.max_bytes %d" % (total, limit))
        t = self._transfer()
        if t is not None and t.sig == sig:
            t.force = force
            self.log("resuming %s at file %d offset %d" % (m["version"], t.file, t.offset))
            return self._reply(cmd, resumed=True, slot=t.slot, version=m["version"], **self._position(t))
        slot = self.spare()
        self._t = None
        self._t_checked = True
        try:
            # The slot's manifest.json goes first: from here on boot.py would not use this slot, whatever remains.
            _remove(self._p(slot + "/" + SLOT_MANIFEST))
            _rmtree(self._p(slot))
            _mkdirs(self._p(slot))
            free = self._free()
            if free is not None and total + _FREE_MARGIN > free:
                need = total + _FREE_MARGIN
                return self._reply(cmd, False, "not enough flash: need %d bytes, %d free" % (need, free))
            # The index before stage.json: a transfer exists once stage.json does (a resume writes the index anew).
            t = _Transfer(slot, m, sig, force is True, self._p(slot + "/" + INDEX_FILE))
            _write_atomic(self._p(slot + "/" + STAGE_FILE), {"manifest": m, "sig": sig, "force": force is True})
        except OSError as e:
            return self._reply(cmd, False, "flash error: %s" % e)
        t.hash = hashlib.sha256()
        self._t = t
        self._skip_empty(t)
        self.log("begin %s -> %s: %d files, %d bytes" % (running, m["version"], len(m["files"]), total))
        return self._reply(cmd, resumed=False, slot=slot, version=m["version"], **self._position(t))

    def _free(self):
        statvfs = getattr(os, "statvfs", None)
        if statvfs is None:
            return None
        s = statvfs(self.root or ".")
        return s[1] * s[4]  # fragment size x blocks available (POSIX order on every runtime)

    def _skip_empty(self, t):
        # Zero-byte files (an empty __init__.py) get no chunk: create them and move on.
        files = t.files
        while t.file < files.n and t.offset == 0 and files.entry(t.file)[0] == 0:
            self._finish_file(t, hashlib.sha256())

    def _finish_file(self, t, h):
        size, digest, path = t.files.entry(t.file)
        p = self._p(t.slot + "/" + path)
        if size == 0:
            _mkdirs(self._p(t.slot + "/" + path.rsplit("/", 1)[0]))
            with open(p, "wb"):
                pass
        if h.digest() != digest:
            _remove(p)
            t.offset = 0
            t.hash = hashlib.sha256()
            return "sha256 mismatch in %s: file restarted" % path
        t.file += 1
        t.offset = 0
        t.hash = hashlib.sha256()
        return None

    def chunk(self, payload):
        """One chunk from the ota topic. Reply dict (ack with the next expected position, or the error and where
        to continue), or None for a chunk of another transfer (a sender that is gone)."""
        cmd = "ota_chunk"
        if len(payload) < HEADER_LEN:
            return self._reply(cmd, False, "chunk shorter than its header")
        fmt, idx, session, offset = struct.unpack_from(CHUNK_HEADER, payload, 0)
        t = self._transfer()
        if t is None:
            return self._reply(cmd, False, "no transfer: send ota_begin", session=session)
        if session != t.session:
            return None
        if fmt != CHUNK_FORMAT:
            return self._reply(cmd, False, "chunk format %d unknown" % fmt, **self._position(t))
        n = len(payload) - HEADER_LEN
        if t.complete():
            return self._reply(cmd, False, "transfer complete: send ota_commit", **self._position(t))
        if idx != t.file or offset != t.offset:
            return self._reply(cmd, False, "out of order", **self._position(t))
        size, _, path = t.files.entry(idx)
        if n == 0 or n > MAX_CHUNK or offset + n > size:
            return self._reply(cmd, False, "bad chunk length %d" % n, **self._position(t))
        data = memoryview(payload)[HEADER_LEN:]
        p = self._p(t.slot + "/" + path)
        try:
            if offset == 0:
                _mkdirs(self._p(t.slot + "/" + path.rsplit("/", 1)[0]))
            with open(p, "wb" if offset == 0 else "ab") as fh:  # a file's first chunk replaces any leftover
                fh.write(data)
        except OSError as e:
            # What reached the flash is unknown: the next status/begin re-reads the file size.
            self._t = None
            self._t_checked = False
            return self._reply(cmd, False, "flash error: %s" % e)
        t.hash.update(data)
        t.offset += n
        error = None
        if t.offset == size:
            error = self._finish_file(t, t.hash)
            if error is None:
                self._skip_empty(t)
            else:
                self.log(error)
        if error is not None:
            return self._reply(cmd, False, error, **self._position(t))
        return self._reply(cmd, **self._position(t))

    def status(self):
        """Running version, slots, trial, the transfer in progress (for a resume) and the last outcome."""
        t = self._transfer()
        staging = None
        if t is not None:
            staging = {"version": t.version, "slot": t.slot, "files": t.files.n,
                       "bytes": t.done_bytes(), "total": t.total()}
            staging.update(self._position(t))
        return self._reply("ota_status", version=self.version(), active=self.active(), trial=self.on_trial(),
                           previous=self.doc.get("previous"), staging=staging, result=self.doc.get("result"))

    def abort(self):
        """Forget the transfer and empty the spare slot."""
        t = self._transfer()
        self._t = None
        self._t_checked = True
        slot = self.spare()
        try:
            _remove(self._p(slot + "/" + SLOT_MANIFEST))
            _rmtree(self._p(slot))
        except OSError as e:
            return self._reply("ota_abort", False, "flash error: %s" % e)
        if t is not None:
            self.log("transfer of %s aborted" % t.version)
        return self._reply("ota_abort", aborted=t is not None)

    # --- the switch ----------------------------------------------------------------------------------------------

    def commit(self):
        """Verify every staged file from flash, then switch to the slot (trial); the node must reset after."""
        cmd = "ota_commit"
        t = self._transfer()
        if t is None:
            return self._reply(cmd, False, "nothing staged")
        if not t.complete():
            return self._reply(cmd, False, "transfer incomplete", **self._position(t))
        if self.on_trial():
            return self._reply(cmd, False, "the running version is on trial: wait for it to confirm")
        running = self.version()
        if parse_version(t.version) < parse_version(running) and not t.force:
            return self._reply(cmd, False, "version %s is older than the running %s" % (t.version, running))
        bad = None
        for i, size, digest, path in t.files.entries():
            p = self._p(t.slot + "/" + path)
            if bad is None and (_size(p) != size or self._hash_file(p, size).digest() != digest):
                bad = (i, p, path)  # the first one; the rest is read only to close the index
        if bad is not None:
            # Flash did not keep what was written: that file is sent again.
            i, p, path = bad
            _remove(p)
            t.file, t.offset, t.hash = i, 0, hashlib.sha256()
            self.log("verify failed: %s" % path)
            return self._reply(cmd, False, "verify failed: %s" % path, **self._position(t))
        previous = self.active()
        try:
            _write_atomic(self._p(t.slot + "/" + SLOT_MANIFEST), {"version": t.version, "sig": t.sig})
            # The switch: one rename. Before it the old image boots, after it the new one boots on trial.
            self.doc = {"active": t.slot, "previous": previous, "trial": True, "boots": 0,
                        "version": t.version, "from": running, "result": None}
            self._save()
            _remove(self._p(t.slot + "/" + STAGE_FILE))
            _remove(self._p(t.slot + "/" + INDEX_FILE))
        except OSError as e:
            return self._reply(cmd, False, "flash error: %s" % e)
        self._t = None
        self.reset_wanted = True
        self.log("switched to %s (%s) on trial; restarting" % (t.version, t.slot))
        return self._reply(cmd, version=t.version, slot=t.slot, restart=True)

    # --- the trial -------------------------------------------------------------------------------------------------

    def confirm_if_due(self, connected, uptime_s):
        """Called every control step. On trial: confirm once connected with `confirm_s` of uptime; roll back (and
        want a reset) when `trial_max_s` passed without that. Returns True when it changed something."""
        if not self.on_trial():
            return False
        if connected and uptime_s >= self.cfg["confirm_s"]:
            broken = _update_path_broken()
            if broken is not None:
                self.roll_back(broken)  # confirmed, this version could never be updated again
                return True
            d = self.doc
            self.doc = {"active": self.active(), "previous": d.get("previous"), "trial": False, "boots": 0,
                        "version": d.get("version"), "from": d.get("from"),
                        "result": {"kind": "ota_confirmed", "version": d.get("version"), "from": d.get("from"),
                                   "reported": False}}
            self._save()
            self.log("version %s confirmed" % d.get("version"))
            return True
        if uptime_s >= self.cfg["trial_max_s"]:
            why = "not confirmed within %d s (%s)" % (self.cfg["trial_max_s"],
                                                      "connected" if connected else "broker not reached")
            self.roll_back(why)
            return True
        return False

    def roll_back(self, why):
        """Make the previous image active again (boot.py does the same when a trial boot resets)."""
        d = self.doc
        prev = d.get("previous")
        if prev not in SLOTS or _size(self._p(prev + "/" + SLOT_MANIFEST)) < 0:
            prev = FACTORY
        self.doc = {"active": prev, "previous": None, "trial": False, "boots": 0, "version": d.get("from"),
                    "result": {"kind": "ota_rollback", "version": d.get("version"), "reason": why,
                               "reported": False}}
        self._save()
        self.reset_wanted = True
        self.log("rolling back %s: %s" % (d.get("version"), why))

    def pending_report(self):
        """The outcome of the last update as an event dict, once (None when there is nothing new to tell)."""
        if self.reset_wanted:
            # A rollback or switch decided in this run: the version that runs after the reset reports it (this one
            # would name itself as running, and its event could die in the queue with the reset).
            return None
        r = self.doc.get("result")
        if not isinstance(r, dict) or r.get("reported") is not False:
            return None
        r["reported"] = True
        try:
            self._save()
        except OSError:
            pass  # reported again after the next boot: better twice than never
        ev = {"kind": r.get("kind"), "version": r.get("version"), "running": self.version()}
        if r.get("reason") is not None:
            ev["reason"] = r["reason"]
        return ev
