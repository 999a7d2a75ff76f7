"""A throwaway PostgreSQL cluster on a free local port, for the console's tests and benchmark.

    with PgCluster() as pg:                 # initdb + postgres in a fresh temp directory
        url = pg.create_database("t1")      # postgresql://console@127.0.0.1:PORT/t1

Uses Debian's PostgreSQL server binaries (package `postgresql`: /usr/lib/postgresql/<v>/bin). PostgreSQL refuses to
run as root, so as root (CI) the cluster belongs to the unprivileged user `nobody` (runuser); as anyone else it is
that user's. Trust authentication on 127.0.0.1 only, no unix socket outside its directory, nothing kept.
"""

import glob
import os
import shutil
import subprocess
import tempfile
import time

import console  # noqa: F401  (puts tools/ on sys.path)
from broker import free_port  # tools/broker.py

DEBIAN_PACKAGE = "postgresql"


def server_bin():
    """The directory holding initdb/pg_ctl/postgres, or None when PostgreSQL's server is not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def start_or_skip(skip):
    """A started cluster, or skip(reason naming the Debian package) when PostgreSQL's server is not installed."""
    if server_bin() is None:
        skip("PostgreSQL server not found: install the Debian package %s" % DEBIAN_PACKAGE)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        skip("psycopg not installed: pip install -r requirements-dev.txt")
    return PgCluster().start()


class PgCluster:
    def __init__(self, user="console"):
        self.bin = server_bin()
        if self.bin is None:
            raise RuntimeError("PostgreSQL server binaries not found (Debian package %s)" % DEBIAN_PACKAGE)
        self.user = user
        self.dir = tempfile.mkdtemp(prefix="console-pg-")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        self.started = False

    def _run(self, args, **kw):
        cmd = (["runuser", "-u", "nobody", "--"] if self.as_root else []) + args
        return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120, **kw)

    def start(self):
        if self.as_root:
            os.chown(self.dir, _uid("nobody"), -1)
        self._run([os.path.join(self.bin, "initdb"), "-D", self.data, "-U", self.user, "--auth=trust", "-E", "UTF8",
                   "--no-sync", "--no-instructions"])
        opts = "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off" % (self.port, self.dir)
        self._run([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-o", opts, "-l",
                   os.path.join(self.dir, "server.log"), "-w", "-t", "60", "start"])
        self.started = True
        return self

    def url(self, database="postgres"):
        return "postgresql://%s@127.0.0.1:%d/%s" % (self.user, self.port, database)

    def create_database(self, name):
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS %s" % name)
            conn.execute("CREATE DATABASE %s" % name)
        return self.url(name)

    def log(self):
        try:
            with open(os.path.join(self.dir, "server.log")) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.started:
            try:
                self._run([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop"])
            except subprocess.CalledProcessError:
                time.sleep(0.5)
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _uid(name):
    import pwd

    return pwd.getpwnam(name).pw_uid
