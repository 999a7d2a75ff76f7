"""Builds the project's own MicroPython unix binaries from Debian's MicroPython source package (no root needed).

    python tools/mpbuild.py esp32      # the ESP32-shaped binary, firmware frozen in; prints its path
    python tools/mpbuild.py native     # the plain 64-bit host binary for virtual nodes; prints its path
    python tools/mpbuild.py path esp32 # the path a build would have (built or not), for scripts
    python tools/mpbuild.py stage      # only the doc-stripped frozen sources; prints their folders (board, sim)
    python tools/mpbuild.py fetch      # only the source tarball; prints its path

Runs as any user: apt-get works on a private state folder, so no root (checked as `nobody` with HOME in /tmp).

Two binaries, one source tree:

* **esp32-shaped** — the unix port cross-compiled for 32-bit x86 (`i686-linux-gnu-gcc`, Debian package
  `gcc-i686-linux-gnu`): 32-bit objects and small ints, float32 arithmetic, `ticks_ms` period 2^30, and the GC heap
  split into 2 areas, as an ESP32 without PSRAM has after its one heap growth. `-X heapsize=112K` gives two equal
  56 KB areas: the unix port divides the heap size by the number of areas (ports/unix/main.c). The firmware is frozen
  in from boards/STREETLIGHT_ESP32/manifest.py — the manifest the real ESP32 image is built from — plus
  drivers/sim.py (boards/STREETLIGHT_ESP32/manifest_unix_sim.py), so a module that manifest forgets fails here too.
  No TLS in it: on an ESP32, mbedTLS is ESP-IDF's and takes its buffers from the IDF heap, not from the GC heap this
  binary measures; with TLS the unix port would put them in the GC heap and every figure would be wrong.
  The heap, as found in the 1.25 source: the ESP32 port starts with one 56 KB area and, with
  MICROPY_GC_SPLIT_HEAP_AUTO, adds an area when an allocation fails — at least doubling the total, or exactly the
  failed allocation's size, or whatever the IDF heap's largest free block still allows (py/gc.c gc_try_add_heap,
  ports/esp32/gccollect.c). Its comment sizes the first area so it "can grow the heap once (double it)" and still
  start Wi-Fi and a TLS connection: 2 x 56 KB is the heap to plan for. The unix port has no AUTO growth; with
  MICROPY_GC_SPLIT_HEAP_N_HEAPS=2 it mallocs both areas at start, each heapsize / 2 (ports/unix/main.c), so
  `-X heapsize=112K` is the grown ESP32 heap from the first allocation on. Measured: gc.mem_free() + mem_alloc() =
  111,936 (the GC's tables take the rest), a 52 KB bytearray fits and a 58 KB one does not although 111 KB are
  free — no block can span two areas (host_tests/test_esp32_runtime.py). The C stack: 40,000 bytes by default
  here, 15 KB usable on the ESP32's MicroPython task; MICROPY_C_STACK_LIMIT=15360 in the environment holds a run to
  the ESP32's figure (our one source patch, below; i386 frames are not Xtensa frames, so it is a lower bound). Not
  ESP32-shaped: the epoch (1970 here, 2000 on the ESP32; drivers/sim.py emulates the 2000 epoch).
* **native** — the same tree for this machine, no frozen firmware: a MicroPython process of 2.5-3.9 MB RSS (a running
  node) where the pip-packaged `micropython` (MicroPython inside a CPython process) takes 12.3-13 MB. No TLS
  either (the tarball's mbedtls submodule is empty): nodes configured for TLS run on the pip binary.

Where the source comes from: the upstream tarball of Debian's `micropython` source package in the `trixie` suite,
fetched with apt-get through a `deb-src` entry made here at run time from the machine's own apt sources (so no mirror
is written into the repo) and apt state in a user-writable folder. Its sha256 is pinned below; the Debian revision
may change, the upstream tarball does not. The tarball lacks the git submodules: no micropython-lib (MPY_LIB_DIR
points at a folder with only a README.md, which is all the build checks; our manifests require() nothing on unix),
no mbedtls, no libffi, no berkeley-db — hence no ssl, ffi, btree.

Everything goes into ${XDG_CACHE_HOME:-~/.cache}/streetlight-mp/ (outside git): the tarball, the extracted tree,
the binaries. An esp32 binary is named by a hash of the tarball sha, the build flags, the manifests and the frozen
sources, so a changed firmware file gives a new binary on the next `esp32` call and an unchanged one is reused.
Builds take a file lock: parallel test workers wait for one build instead of racing in the same tree.
"""

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

TARBALL = "micropython_1.25.0+ds.orig.tar.xz"
TARBALL_SHA256 = "7b25be99a502f070b2de81dafc08da7051d992325d6e67daa9045a918fffdbea"
TREE = "micropython-1.25.0"  # the tarball's top folder
SUITE = "trixie"  # Debian's stable suite carries 1.25.0+ds
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
CROSS = "i686-linux-gnu-"
CROSS_PACKAGE = "gcc-i686-linux-gnu"
KEEP_ESP32_BINARIES = 8
KEEP_STAGES = 32  # staged source folders (a board build outside this script may still be reading a recent one)
BOARD_MANIFEST = os.path.join(ROOT, "boards", "STREETLIGHT_ESP32", "manifest.py")
UNIX_MANIFEST = os.path.join(ROOT, "boards", "STREETLIGHT_ESP32", "manifest_unix_sim.py")

# What the tarball cannot build (empty submodules), and readline (not needed by a node that reads no terminal).
COMMON_ARGS = ("VARIANT=standard", "MICROPY_PY_BTREE=0", "MICROPY_PY_FFI=0", "MICROPY_PY_SSL=0",
               "MICROPY_SSL_MBEDTLS=0", "MICROPY_USE_READLINE=0")
# The binary is linked against the cross toolchain's own i386 C library (package libc6-i386-cross, installed with the
# compiler) and names its loader: a 64-bit Debian has no i386 libc of its own, so `/lib/ld-linux.so.2` is missing.
CROSS_SYSROOT = "/usr/i686-linux-gnu/lib"
ESP32_LDFLAGS = "-Wl,--dynamic-linker=%s/ld-linux.so.2 -Wl,-rpath=%s" % (CROSS_SYSROOT, CROSS_SYSROOT)
# The ESP32's number shapes: float32 (MICROPY_FLOAT_IMPL_FLOAT, as ports/esp32), the heap in 2 areas. i386 has no
# native _Float16 without SSE2, hence FLT16=0 (Debian's own packaging sets it for i386 too).
ESP32_CFLAGS = ("-DMICROPY_FLOAT_IMPL=MICROPY_FLOAT_IMPL_FLOAT -DMICROPY_GC_SPLIT_HEAP=1 "
                "-DMICROPY_GC_SPLIT_HEAP_N_HEAPS=2 -DMICROPY_FLOAT_USE_NATIVE_FLT16=0")


class BuildError(Exception):
    pass


def cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "streetlight-mp")


def _sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- the source tarball ----------------------------------------------------------------------------------------


def debian_mirror(paths=("/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list")):
    """The Debian archive URI this machine's apt already uses (deb822 `URIs:` or a one-line `deb URI suite ...`),
    skipping the security archive, which carries no `trixie` suite of its own."""
    for path in paths:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if words[0] == "URIs:":
                uris = words[1:]
            elif words[0] in ("deb", "deb-src"):
                uris = [w for w in words[1:] if "://" in w][:1]
            else:
                continue
            for uri in uris:
                if "security" not in uri and "://" in uri:
                    return uri
    raise BuildError("no Debian mirror found in the machine's apt sources (%s)" % ", ".join(paths))


def _apt_options(state):
    """apt-get options that keep every file apt writes under `state`, so a normal user can run it. Locking is off
    because the lock files of a private state folder protect nothing; APT::Sandbox::User keeps root from handing
    the download to the `_apt` user, who could not write into a root-owned cache."""
    try:
        import pwd

        user = pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        user = os.environ.get("USER", "root")
    return ["-o", "Dir::Etc::sourcelist=" + os.path.join(state, "sources.list"),
            "-o", "Dir::Etc::sourceparts=/nonexistent",
            "-o", "Dir::State::Lists=" + os.path.join(state, "lists"),
            "-o", "Dir::Cache=" + os.path.join(state, "cache"),
            "-o", "Debug::NoLocking=1",
            "-o", "APT::Sandbox::User=" + user]


def fetch_tarball(log=sys.stderr):
    """The pinned upstream tarball, downloaded once into the cache; its path."""
    cache = cache_dir()
    dest = os.path.join(cache, TARBALL)
    if os.path.exists(dest) and _sha256_file(dest) == TARBALL_SHA256:
        return dest
    if not shutil.which("apt-get"):
        raise BuildError("apt-get not found: fetch %s (sha256 %s) into %s by hand" % (TARBALL, TARBALL_SHA256, cache))
    if not os.path.exists(KEYRING):
        raise BuildError("%s missing (Debian package debian-archive-keyring)" % KEYRING)
    state = os.path.join(cache, "apt")
    for sub in ("lists/partial", "cache/archives/partial", "download"):
        os.makedirs(os.path.join(state, sub), exist_ok=True)
    with open(os.path.join(state, "sources.list"), "w") as f:
        f.write("deb-src [signed-by=%s] %s %s main\n" % (KEYRING, debian_mirror(), SUITE))
    opts = _apt_options(state)
    log.write("mpbuild: fetching Debian's micropython source (%s) with apt-get\n" % SUITE)
    for args, cwd in ((["update", "-q"], state), (["source", "--download-only", "-q", "micropython"],
                                                  os.path.join(state, "download"))):
        p = subprocess.run(["apt-get"] + opts + args, cwd=cwd, capture_output=True, text=True)
        if p.returncode != 0:
            raise BuildError("apt-get %s failed: %s" % (args[0], (p.stderr or p.stdout).strip()[-800:]))
    got = os.path.join(state, "download", TARBALL)
    if not os.path.exists(got):
        raise BuildError("apt-get source gave no %s (has the suite moved on?)" % TARBALL)
    sha = _sha256_file(got)
    if sha != TARBALL_SHA256:
        raise BuildError("%s: sha256 %s, pinned %s — refusing to build from it" % (TARBALL, sha, TARBALL_SHA256))
    os.replace(got, dest)
    return dest


def source_tree(log=sys.stderr):
    """The extracted tree (once), with mpy-cross built; its path."""
    cache = cache_dir()
    top = os.path.join(cache, "src-" + TARBALL_SHA256[:12])
    tree = os.path.join(top, TREE)
    done = os.path.join(top, ".extracted")
    if not os.path.exists(done):
        tarball = fetch_tarball(log)
        shutil.rmtree(top, ignore_errors=True)
        os.makedirs(top)
        with tarfile.open(tarball) as tf:
            if hasattr(tarfile, "data_filter"):
                tf.extractall(top, filter="data")
            else:  # Python < 3.11.4: the tarball's sha is pinned, its members are the ones we checked
                tf.extractall(top)
        open(done, "w").close()
    _patch_stack_limit(tree)
    if not os.path.exists(os.path.join(tree, "mpy-cross", "build", "mpy-cross")):
        _make(["-C", os.path.join(tree, "mpy-cross")], log)
    return tree


# Our one change to MicroPython's source: the unix port's C stack limit (40,000 bytes on a 32-bit build) can be set
# from the environment, so a test can hold the firmware to the ESP32's: its MicroPython task has a 16 KB stack, less
# MICROPY_STACK_CHECK_MARGIN (1 KB) (ports/esp32/mpconfigport.h). Unset, the limit is the port's own.
STACK_ENV = "MICROPY_C_STACK_LIMIT"
PATCH = "p2"  # part of every binary's name: a binary from an unpatched tree is never taken for a patched one
_STACK_LINE = "    mp_uint_t stack_size = 40000 * (sizeof(void *) / 4);\n"
_STACK_PATCHED = ("    // streetlight (tools/mpbuild.py): %s=<bytes> sets the C stack limit (the ESP32's is 15 KB).\n"
                  "    const char *stack_env = getenv(\"%s\");\n"
                  "    mp_uint_t stack_size = (stack_env && *stack_env) ? (mp_uint_t)strtoul(stack_env, NULL, 0)\n"
                  "        : 40000 * (sizeof(void *) / 4);\n" % (STACK_ENV, STACK_ENV))


def _patch_stack_limit(tree):
    path = os.path.join(tree, "ports", "unix", "main.c")
    with open(path) as f:
        text = f.read()
    if _STACK_PATCHED in text:
        return
    if text.count(_STACK_LINE) != 1:
        raise BuildError("%s: the stack-limit line to patch is not there (another MicroPython release?)" % path)
    with open(path, "w") as f:
        f.write(text.replace(_STACK_LINE, _STACK_PATCHED))


def _mplib_stub():
    """A stand-in for the empty micropython-lib submodule: the build only checks that README.md exists."""
    d = os.path.join(cache_dir(), "micropython-lib-stub")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "README.md"), "w") as f:
        f.write("Stand-in for micropython-lib: the streetlight manifests require() nothing on the unix port.\n")
    return d


def _make(args, log):
    jobs = str(max(1, min(2, os.cpu_count() or 1)))
    p = subprocess.run(["make", "-j" + jobs] + args, capture_output=True, text=True)
    if p.returncode != 0:
        raise BuildError("make %s failed:\n%s" % (" ".join(args), (p.stdout[-1500:] + p.stderr[-2500:])))


# --- the frozen sources ------------------------------------------------------------------------------------------


def frozen_sources(root=ROOT):
    """[(frozen path, source path)] of the code the board manifest freezes: what a provision bundle ships as .mpy
    (tools/provision.py device_sources: firmware/, drivers/ without sim, the pinned umqtt), one list for both."""
    import provision

    return [(rel[:-4] + ".py", src) for rel, src, compiled in provision.device_sources(root) if compiled]


def stage_sources(root=ROOT):
    """The board's frozen sources, doc-stripped like the bundles' .mpy (provision.strip_docs: the same program, the
    same line numbers, no schema descriptions in flash), in a folder of the cache; its path."""
    import provision

    provision.check_umqtt(root)  # never freeze an unpinned MQTT client
    return _stage(frozen_sources(root))


def sim_sources(root=ROOT):
    """What the unix manifest adds to the board's: the simulated drivers that make the binary a virtual post."""
    return [("drivers/sim.py", os.path.join(root, "drivers", "sim.py"))]


def stage_sim(root=ROOT):
    return _stage(sim_sources(root))


def _stage(files):
    """[(frozen path, source path)] doc-stripped into a folder named by their content; its path. A folder that
    exists is reused as is, so its files keep their timestamps and the MicroPython build does not recompile them."""
    import provision

    items = []
    for target, src in files:
        with open(src, encoding="utf-8") as f:
            items.append((target, provision.strip_docs(f.read())))
    h = hashlib.sha256()
    for target, text in items:
        h.update(target.encode() + b"\0" + text.encode() + b"\0")
    top = os.path.join(cache_dir(), "stage")
    dest = os.path.join(top, h.hexdigest()[:16])
    if os.path.exists(dest):
        os.utime(dest)  # marks it recent for _prune; the files inside keep their times
        return dest
    os.makedirs(top, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="tmp-", dir=top)
    for target, text in items:
        path = os.path.join(tmp, target)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    try:
        os.rename(tmp, dest)  # complete or absent: a build never sees half a folder
    except OSError:  # another process staged the same content first
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


# --- the binaries ------------------------------------------------------------------------------------------------


def have_cross_compiler():
    return shutil.which(CROSS + "gcc") is not None


def missing_cross_message():
    return "esp32-shaped MicroPython not built: needs %sgcc (Debian package %s)" % (CROSS, CROSS_PACKAGE)


def esp32_key(root=ROOT):
    """Names the esp32-shaped binary: tarball, flags, manifests and staged (stripped) frozen sources."""
    h = hashlib.sha256()
    h.update((TARBALL_SHA256 + PATCH).encode())
    h.update(" ".join(COMMON_ARGS + (ESP32_CFLAGS, ESP32_LDFLAGS, CROSS)).encode())
    for path in (BOARD_MANIFEST, UNIX_MANIFEST):
        with open(path, "rb") as f:
            h.update(f.read())
    for stage in (stage_sources(root), stage_sim(root)):
        h.update(os.path.basename(stage).encode())
    return h.hexdigest()[:16]


def esp32_path(root=ROOT):
    return os.path.join(cache_dir(), "bin", "micropython-esp32-" + esp32_key(root))


def native_path():
    return os.path.join(cache_dir(), "bin", "micropython-native-%s-%s" % (TARBALL_SHA256[:12], PATCH))


class _Lock:
    """An exclusive lock on a file in the cache (released when the process dies, unlike a lock folder)."""

    def __enter__(self):
        os.makedirs(cache_dir(), exist_ok=True)
        self._f = open(os.path.join(cache_dir(), "build.lock"), "w")
        fcntl.flock(self._f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self._f, fcntl.LOCK_UN)
        self._f.close()


def _build_unix(tree, build_name, extra_args, out, log):
    """make ports/unix into its own BUILD folder (the two binaries share one tree), copy the binary to `out`."""
    build = os.path.join(tree, "ports", "unix", build_name)
    _make(["-C", os.path.join(tree, "ports", "unix"), "BUILD=" + build_name, "MPY_LIB_DIR=" + _mplib_stub()]
          + list(COMMON_ARGS) + list(extra_args), log)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    shutil.copy2(os.path.join(build, "micropython"), out + ".tmp")
    os.replace(out + ".tmp", out)
    return out


def build_esp32(root=ROOT, log=sys.stderr):
    """The esp32-shaped binary for the current sources (built when missing); its path."""
    if not have_cross_compiler():
        raise BuildError(missing_cross_message())
    with _Lock():
        out = esp32_path(root)
        if os.path.exists(out):
            return out
        tree = source_tree(log)
        log.write("mpbuild: building the esp32-shaped MicroPython (a minute the first time, seconds after)\n")
        _forget_frozen(os.path.join(tree, "ports", "unix", "build-esp32"))
        _build_unix(tree, "build-esp32", [
            "CROSS_COMPILE=" + CROSS, "FROZEN_MANIFEST=" + UNIX_MANIFEST, "CFLAGS_EXTRA=" + ESP32_CFLAGS,
            "LDFLAGS_EXTRA=" + ESP32_LDFLAGS], out, log)
        _link(out, "micropython-esp32")
        _prune(os.path.dirname(out), "micropython-esp32-", KEEP_ESP32_BINARIES)
        _prune(os.path.join(cache_dir(), "stage"), "", KEEP_STAGES)
        return out


def _forget_frozen(build):
    """One build folder serves every esp32 build (the C objects are the same; only the frozen code changes), so the
    frozen part is made afresh each time: the manifest tool decides by file times, and a source staged earlier than
    the last build's .mpy (a reverted change) would otherwise keep the newer bytecode."""
    shutil.rmtree(os.path.join(build, "frozen_mpy"), ignore_errors=True)
    for name in ("frozen_content.c", "frozen_content.o"):
        if os.path.exists(os.path.join(build, name)):
            os.remove(os.path.join(build, name))


def _prune(folder, prefix, keep):
    """Delete all but the `keep` newest entries named prefix* (binaries, staged folders): every edit of device code
    makes a new one. A test session started earlier may still use one of the last few, so they stay."""
    found = sorted((os.path.getmtime(os.path.join(folder, n)), n) for n in os.listdir(folder)
                   if n.startswith(prefix) and not n.endswith(".tmp") and not n.startswith("tmp-"))
    for _t, name in found[:-keep]:
        path = os.path.join(folder, name)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.remove(path)


def build_native(log=sys.stderr):
    """The native host binary (built when missing); its path."""
    with _Lock():
        out = native_path()
        if os.path.exists(out):
            return out
        tree = source_tree(log)
        log.write("mpbuild: building the native MicroPython\n")
        # An empty FROZEN_MANIFEST: the standard variant's manifest require()s micropython-lib, which the tarball lacks.
        _build_unix(tree, "build-native", ["FROZEN_MANIFEST="], out, log)
        _link(out, "micropython-native")
        return out


def _link(target, name):
    """A stable name for the newest build (for people and scripts; tests ask for the exact path)."""
    link = os.path.join(os.path.dirname(target), name)
    tmp = link + ".tmp"
    if os.path.lexists(tmp):
        os.remove(tmp)
    os.symlink(os.path.basename(target), tmp)
    os.replace(tmp, link)


def built_native():
    """The native binary's path when it has been built, else None (never builds: callers fall back to pip's)."""
    p = native_path()
    return p if os.access(p, os.X_OK) else None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=("esp32", "native", "stage", "path", "fetch"))
    ap.add_argument("kind", nargs="?", choices=("esp32", "native"), help="with `path`: which binary")
    args = ap.parse_args(argv)
    try:
        if args.what == "esp32":
            print(build_esp32())
        elif args.what == "native":
            print(build_native())
        elif args.what == "stage":
            print(stage_sources())
            print(stage_sim())
        elif args.what == "fetch":
            print(fetch_tarball())
        elif args.kind == "native":
            print(native_path())
        else:
            print(esp32_path())
    except BuildError as e:
        sys.stderr.write("mpbuild: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
