"""Generate a city broker's access control from the fleet inventory: mosquitto ACL file, password file, config.

    python tools/mosquitto_acl.py INVENTORY.json OUTDIR [--certs DIR [--port 8883] [--bind ADDR]] [--plain-port N]

--certs DIR (ca.pem, server.pem, server.key) adds the TLS listener; it binds 127.0.0.1 unless --bind names the
address nodes reach it on (0.0.0.0 for every interface): exposing the broker is a choice, never a default.
--plain-port adds a listener without TLS, always on 127.0.0.1 (tests, an agent on the broker host).

INVENTORY.json:
    {"prefix": "city/lights",
     "nodes":     [{"id": "pdg-0001", "groups": ["east"], "password": "..."}],
     "operators": [{"user": "ops-console", "password": "..."}],
     "monitors":  [{"user": "grafana", "password": "..."}]}

A node's MQTT user name is its node id (and, with use_username_as_clientid, so is its client id). Roles:
- node: publish only <prefix>/<id>/{status,state,tele,event,reply}; receive only <prefix>/<id>/cmd,
  <prefix>/<id>/ota, its own <prefix>/<id>/status, <prefix>/all/cmd and <prefix>/group/<g>/cmd for its groups.
  Explicit per-user sections, not `pattern`
  lines: a pattern (%u) cannot say which groups a node is in, and it would also grant every operator and monitor
  user a node-shaped topic tree under its own name.
- operator: read everything under the prefix; publish only command topics (node, group, broadcast) and update
  chunks (<prefix>/<id>/ota).
- monitor: read everything under the prefix; publish nothing.
Every password: 12..256 characters (PASSWORD_MIN, PASSWORD_MAX), one line.
Anonymous clients are refused. Passwords go into a mosquitto password file (PBKDF2-SHA512, `$7$`), made with
`mosquitto_passwd -b` when it is installed, else by the same algorithm here (the format mosquitto 2 reads).

From Python: `generate(inventory, outdir, listeners=...)` → {"acl", "passwd", "conf"} paths;
`acl_text(inventory)`, `security_conf(...)`, `write_password_file(...)`, `tls_listener(...)`, `plain_listener(...)`.
"""

import argparse
import base64
import hashlib
import ipaddress
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from firmware.schema import NAME_CHARS  # noqa: E402  (node ids and group names: the node's own rule)

TEMPLATE = os.path.join(HERE, "mosquitto", "broker.conf.template")
NODE_TOPICS_OUT = ("status", "state", "tele", "event", "reply")
RESERVED = ("group", "all")
PBKDF2_ROUNDS = 101  # what mosquitto_passwd 2.0 writes; mosquitto reads the count from each line
USER_CHARS = NAME_CHARS + "ABCDEFGHIJKLMNOPQRSTUVWXYZ.@"


PASSWORD_MIN = 12  # a broker password guessed online is a lamp post's (or the whole fleet's) command channel
PASSWORD_MAX = 256
# "user" of a node: allowed only as its id (what check_inventory itself returns, so checking again is harmless).
ROLE_KEYS = {"nodes": ("id", "groups", "password", "user"), "operators": ("user", "password"),
             "monitors": ("user", "password")}


class InventoryError(ValueError):
    pass


def _name(value, what, chars=NAME_CHARS, maxlen=32):
    if not isinstance(value, str) or not 1 <= len(value) <= maxlen or any(c not in chars for c in value):
        raise InventoryError("%s: %r must be 1..%d characters of [%s]" % (what, value, maxlen, chars))
    return value


def _password(pw, where):
    if not isinstance(pw, str) or not PASSWORD_MIN <= len(pw) <= PASSWORD_MAX or "\n" in pw or "\r" in pw:
        raise InventoryError("%s.password: %d..%d characters, one line" % (where, PASSWORD_MIN, PASSWORD_MAX))
    return pw


def _entries(inv, role):
    entries = inv.get(role, [])
    if not isinstance(entries, list):
        raise InventoryError("%s: must be a list" % role)
    for i, e in enumerate(entries):
        where = "%s[%d]" % (role, i)
        if not isinstance(e, dict):
            raise InventoryError("%s: must be an object" % where)
        unknown = sorted(k for k in e if k not in ROLE_KEYS[role])
        if unknown:
            raise InventoryError("%s: unknown key %r (allowed: %s)" % (where, unknown[0], ", ".join(ROLE_KEYS[role])))
        yield where, e


def check_inventory(inv):
    """Validate the inventory; returns it normalised. InventoryError names the offending entry."""
    if not isinstance(inv, dict):
        raise InventoryError("inventory must be an object")
    unknown = sorted(k for k in inv if k not in ("prefix",) + tuple(ROLE_KEYS))
    if unknown:
        raise InventoryError("unknown key %r (allowed: prefix, nodes, operators, monitors)" % unknown[0])
    prefix = inv.get("prefix", "city/lights")
    if not isinstance(prefix, str) or not prefix or prefix.startswith("/") or prefix.endswith("/") \
            or any(c in prefix for c in "+#\n ") or "//" in prefix:
        raise InventoryError("prefix: %r is not a topic prefix" % (prefix,))
    users = set()
    out = {"prefix": prefix, "nodes": [], "operators": [], "monitors": []}
    for role in ("nodes", "operators", "monitors"):
        for where, e in _entries(inv, role):
            if role == "nodes":
                user = _name(e.get("id"), where + ".id")  # the user name is the node id
                if user in RESERVED:
                    raise InventoryError("%s.id: %r is reserved" % (where, user))
                if e.get("user", user) != user:
                    raise InventoryError("%s.user: a node's user name is its id %r" % (where, user))
                groups = e.get("groups", [])
                if not isinstance(groups, list):
                    raise InventoryError("%s.groups: must be a list of group names" % where)
                groups = [_name(g, where + ".groups") for g in groups]
            else:
                user = _name(e.get("user"), where + ".user", USER_CHARS, 64)
                groups = []
            if user in users:
                raise InventoryError("%s: user %r appears twice" % (where, user))
            users.add(user)
            entry = {"user": user, "password": _password(e.get("password"), where)}
            if role == "nodes":
                entry["id"] = user
                entry["groups"] = groups
            out[role].append(entry)
    return out


def acl_text(inv):
    """The mosquitto acl_file for the inventory (already checked or not)."""
    inv = check_inventory(inv)
    p = inv["prefix"]
    lines = ["# Generated by tools/mosquitto_acl.py from the fleet inventory; regenerate, do not edit.",
             "# No `pattern` lines and no anonymous section: a client may only do what its own section says.", ""]
    for n in inv["nodes"]:
        u = n["user"]
        lines.append("user %s" % u)
        for t in NODE_TOPICS_OUT:
            lines.append("topic write %s/%s/%s" % (p, u, t))
        # Its own status is read back too: a stale Last Will of its previous connection, published after the new
        # birth, is answered with a fresh birth (firmware/node.py). Update chunks arrive on its ota topic.
        lines.append("topic read %s/%s/status" % (p, u))
        lines.append("topic read %s/%s/ota" % (p, u))
        lines.append("topic read %s/%s/cmd" % (p, u))
        lines.append("topic read %s/all/cmd" % p)
        for g in n["groups"]:
            lines.append("topic read %s/group/%s/cmd" % (p, g))
        lines.append("")
    for o in inv["operators"]:
        lines += ["user %s" % o["user"], "topic read %s/#" % p,
                  "topic write %s/+/cmd" % p,  # a node's commands, and <prefix>/all/cmd ("all" is no node id)
                  "topic write %s/group/+/cmd" % p,
                  "topic write %s/+/ota" % p, ""]  # update chunks (tools/ota.py)
    for m in inv["monitors"]:
        lines += ["user %s" % m["user"], "topic read %s/#" % p, ""]
    return "\n".join(lines)


def mosquitto_passwd_path():
    for p in (shutil.which("mosquitto_passwd"), "/usr/bin/mosquitto_passwd", "/usr/sbin/mosquitto_passwd"):
        if p and os.path.exists(p):
            return p
    return None


def hash_password(password, salt=None):
    """One password-file hash in mosquitto 2's `$7$` format (PBKDF2-HMAC-SHA512, 12-byte salt, 64-byte key)."""
    salt = os.urandom(12) if salt is None else salt
    dk = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, PBKDF2_ROUNDS)
    return "$7$%d$%s$%s" % (PBKDF2_ROUNDS, base64.b64encode(salt).decode(), base64.b64encode(dk).decode())


def write_password_file(inv, path, use_tool=None):
    """Write the password file for every user; returns "mosquitto_passwd" or "python" (which made it).

    use_tool None: mosquitto_passwd when installed. Note that `-b` puts each password on a command line for the
    moment it runs (visible to other local users in the process list): run it on a machine you trust.
    """
    inv = check_inventory(inv)
    entries = [(e["user"], e["password"]) for role in ("nodes", "operators", "monitors") for e in inv[role]]
    tool = mosquitto_passwd_path() if use_tool in (None, True) else None
    if use_tool is True and tool is None:
        raise RuntimeError("mosquitto_passwd is not installed")
    if os.path.exists(path):
        os.remove(path)
    if tool:
        open(path, "w").close()
        os.chmod(path, 0o600)
        for user, pw in entries:
            r = subprocess.run([tool, "-b", path, user, pw], capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError("mosquitto_passwd failed for %s: %s" % (user, (r.stdout + r.stderr).strip()))
        return "mosquitto_passwd"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        for user, pw in entries:
            f.write("%s:%s\n" % (user, hash_password(pw)))
    return "python"


def plain_listener(port, host="127.0.0.1", username_as_clientid=True):
    """A listener without TLS: only for loopback (tests, a monitoring agent on the broker host)."""
    return "listener %d %s\nuse_username_as_clientid %s\n" % (port, host, _onoff(username_as_clientid))


def tls_listener(port, cafile, certfile, keyfile, host=None, require_client_cert=False, username_as_clientid=True):
    """A TLS listener (PEM files) on `host`; None listens on every interface (the CLI never passes None: --bind)."""
    lines = ["listener %d%s" % (port, " " + host if host else ""), "use_username_as_clientid %s" %
             _onoff(username_as_clientid), "cafile %s" % cafile, "certfile %s" % certfile, "keyfile %s" % keyfile,
             "tls_version tlsv1.2"]
    if require_client_cert:
        lines.append("require_certificate true")
    return "\n".join(lines) + "\n"


def _onoff(flag):
    return "true" if flag else "false"


def security_conf(acl_file, password_file, listeners, max_packet_size=65536):
    """mosquitto.conf text from tools/mosquitto/broker.conf.template."""
    with open(TEMPLATE) as f:
        text = f.read()
    return text.format(acl_file=acl_file, password_file=password_file, max_packet_size=int(max_packet_size),
                       listeners="".join(listeners))


def generate(inv, outdir, listeners, max_packet_size=65536, use_tool=None):
    """Write acl, passwd and mosquitto.conf into outdir; returns their paths and which tool hashed passwords."""
    inv = check_inventory(inv)
    os.makedirs(outdir, exist_ok=True)
    acl = os.path.join(outdir, "acl")
    passwd = os.path.join(outdir, "passwd")
    conf = os.path.join(outdir, "mosquitto.conf")
    with open(acl, "w") as f:
        f.write(acl_text(inv))
    hashed_by = write_password_file(inv, passwd, use_tool)
    # The password file stays 0600: on a city broker, chown it to the user mosquitto runs as (`user` in its config).
    os.chmod(acl, 0o644)
    with open(conf, "w") as f:
        f.write(security_conf(acl, passwd, listeners, max_packet_size))
    return {"acl": acl, "passwd": passwd, "conf": conf, "hashed_by": hashed_by}


def _port(text):
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError("must be a port number 1..65535, not %r" % text)
    return port


def _address(text):
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError("must be an IP address (0.0.0.0: every interface), not %r" % text)


def build_parser():
    ap = argparse.ArgumentParser(
        prog="mosquitto_acl", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__.split("\nFrom Python:")[0],
        epilog="Passwords: %d to %d characters, one line. Exit status: 0 written; 2 bad inventory or arguments "
               "(nothing written)." % (PASSWORD_MIN, PASSWORD_MAX))
    ap.add_argument("inventory", help="fleet inventory JSON: prefix, nodes, operators, monitors")
    ap.add_argument("outdir", help="where acl, passwd and mosquitto.conf are written")
    ap.add_argument("--certs", help="directory with ca.pem, server.pem, server.key: adds the TLS listener")
    ap.add_argument("--port", type=_port, default=8883, help="TLS listener port (default 8883)")
    ap.add_argument("--bind", type=_address, default="127.0.0.1",
                    help="address the TLS listener binds (default 127.0.0.1: this host only; give the address "
                         "nodes connect to, or 0.0.0.0 for every interface)")
    ap.add_argument("--plain-port", type=_port, help="a listener without TLS on 127.0.0.1 (never another address)")
    return ap


def _load_inventory(path):
    try:
        with open(path) as f:
            return check_inventory(json.load(f))
    except OSError as e:
        raise InventoryError("%s: %s" % (path, e.strerror or e))
    except ValueError as e:  # a JSON syntax error, or InventoryError (a ValueError too) naming the entry
        raise InventoryError("%s: %s" % (path, e))


def main(argv):
    ap = build_parser()
    try:
        args = ap.parse_args(argv[1:])
    except SystemExit as e:  # argparse printed the usage line and the error (or --help)
        return e.code if isinstance(e.code, int) else 2
    try:
        inv = _load_inventory(args.inventory)
        listeners = []
        if args.certs:
            files = [os.path.join(args.certs, n) for n in ("ca.pem", "server.pem", "server.key")]
            missing = [f for f in files if not os.path.isfile(f)]
            if missing:
                raise InventoryError("--certs %s: %s not found" % (args.certs, ", ".join(map(os.path.basename,
                                                                                            missing))))
            listeners.append(tls_listener(args.port, files[0], files[1], files[2], host=args.bind))
        if args.plain_port:
            listeners.append(plain_listener(args.plain_port))
        if not listeners:
            raise InventoryError("give --certs DIR (TLS listener) and/or --plain-port N (loopback only)")
        out = generate(inv, args.outdir, listeners)
    except (InventoryError, OSError, RuntimeError) as e:
        print("mosquitto_acl: %s" % e, file=sys.stderr)
        return 2
    print("wrote %s, %s (passwords hashed by %s), %s" % (out["acl"], out["passwd"], out["hashed_by"], out["conf"]))
    if args.certs:
        where = "every interface" if args.bind in ("0.0.0.0", "::") else args.bind
        print("TLS listener: port %d on %s" % (args.port, where))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
