"""Make a throw-away PKI for TLS tests: a CA, good and bad server certificates, a client certificate (PEM + DER).

Uses the `openssl` command line (the `cryptography` package is not in the project venv; openssl is on every
Debian machine we run on). Keys are EC P-256: quick to make, and what an ESP32's mbedTLS handles fastest.

    python tools/certs.py OUTDIR [--client NAME ...]

writes into OUTDIR (PEM `.pem`/`.key`, DER `.der`/`.key.der`):
  ca            the test CA every good certificate chains to
  server        CN=localhost, SAN DNS:localhost + IP:127.0.0.1, signed by ca   (the broker's certificate)
  wronghost     CN=wrong.invalid, SAN DNS:wrong.invalid, signed by ca       (host-name check must refuse it)
  other-ca      an unrelated CA; other-server: a localhost certificate it signed (chain check must refuse it)
  client        CN=client (or each --client NAME), signed by ca, for brokers that require client certificates

From Python: `make_certs(outdir, clients=("client",))` → dict name → {"pem", "key", "der", "key_der"} paths;
`node_tls(certs, hostname, client=None)` → the node's `mqtt.tls` config section (base64 DER);
`mosquitto_listener(certs, port, require_client_cert=False)` → mosquitto.conf lines for a TLS listener;
`paho_tls(certs, client=None)` → keyword arguments for paho's `tls_set`.
"""

import base64
import os
import shutil
import subprocess
import sys

DAYS = "30"  # test certificates: short-lived on purpose


def openssl_path():
    return shutil.which("openssl")


def _run(args, cwd):
    r = subprocess.run([openssl_path()] + args, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (args[0], r.stderr.strip()))


def _key(outdir, name):
    _run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name + ".key"], outdir)
    # PKCS#8 DER: what the node config carries (base64) and what mbedTLS parses from memory.
    _run(["pkey", "-in", name + ".key", "-outform", "DER", "-out", name + ".key.der"], outdir)


def _der(outdir, name):
    _run(["x509", "-in", name + ".pem", "-outform", "DER", "-out", name + ".der"], outdir)


def _ca(outdir, name, cn):
    _key(outdir, name)
    _run(["req", "-x509", "-new", "-key", name + ".key", "-subj", "/CN=" + cn, "-days", DAYS, "-sha256",
          "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
          "-out", name + ".pem"], outdir)
    _der(outdir, name)


def _leaf(outdir, name, cn, ca, san=None, usage="serverAuth"):
    _key(outdir, name)
    _run(["req", "-new", "-key", name + ".key", "-subj", "/CN=" + cn, "-out", name + ".csr"], outdir)
    ext = name + ".ext"
    with open(os.path.join(outdir, ext), "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\n" % usage)
        if san:
            f.write("subjectAltName=%s\n" % san)
    _run(["x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key", "-CAcreateserial",
          "-days", DAYS, "-sha256", "-extfile", ext, "-out", name + ".pem"], outdir)
    _der(outdir, name)
    os.remove(os.path.join(outdir, name + ".csr"))
    os.remove(os.path.join(outdir, ext))


def _paths(outdir, name):
    p = os.path.join(outdir, name)
    return {"pem": p + ".pem", "key": p + ".key", "der": p + ".der", "key_der": p + ".key.der"}


def make_certs(outdir, clients=("client",)):
    """Write the test PKI into outdir (created if needed); returns name → paths. RuntimeError without openssl."""
    if not openssl_path():
        raise RuntimeError("the openssl command is not installed")
    os.makedirs(outdir, exist_ok=True)
    _ca(outdir, "ca", "Streetlight Test CA")
    _leaf(outdir, "server", "localhost", "ca", "DNS:localhost,IP:127.0.0.1")
    _leaf(outdir, "wronghost", "wrong.invalid", "ca", "DNS:wrong.invalid")
    _ca(outdir, "other-ca", "Unrelated CA")
    _leaf(outdir, "other-server", "localhost", "other-ca", "DNS:localhost,IP:127.0.0.1")
    for c in clients:
        _leaf(outdir, c, c, "ca", usage="clientAuth")
    # mosquitto may run as another user: let it read the test keys (they protect nothing outside the test).
    for name in os.listdir(outdir):
        os.chmod(os.path.join(outdir, name), 0o644)
    out = {}
    for name in ["ca", "server", "wronghost", "other-ca", "other-server"] + list(clients):
        out[name] = _paths(outdir, name)
    return out


def b64_file(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def node_tls(certs, hostname="localhost", client=None):
    """The node's `mqtt.tls` section: CA (and optional client cert/key) as base64 DER."""
    return {
        "ca": b64_file(certs["ca"]["der"]),
        "server_hostname": hostname,
        "client_cert": b64_file(certs[client]["der"]) if client else None,
        "client_key": b64_file(certs[client]["key_der"]) if client else None,
    }


def mosquitto_listener(certs, port, server="server", require_client_cert=False, host="127.0.0.1"):
    """mosquitto.conf lines for a TLS listener with the given server certificate (a name from make_certs)."""
    lines = [
        "listener %d %s" % (port, host),
        "cafile %s" % certs["ca"]["pem"],
        "certfile %s" % certs[server]["pem"],
        "keyfile %s" % certs[server]["key"],
        "tls_version tlsv1.2",
    ]
    if require_client_cert:
        lines.append("require_certificate true")
    return "\n".join(lines) + "\n"


def paho_tls(certs, client=None):
    """Keyword arguments for paho-mqtt's `Client.tls_set` (CPython verifies chain and host name by default)."""
    kw = {"ca_certs": certs["ca"]["pem"]}
    if client:
        kw["certfile"] = certs[client]["pem"]
        kw["keyfile"] = certs[client]["key"]
    return kw


def main(argv):
    if len(argv) < 2 or argv[1].startswith("-"):
        print(__doc__)
        return 2
    clients = [argv[i + 1] for i in range(2, len(argv) - 1) if argv[i] == "--client"] or ["client"]
    certs = make_certs(argv[1], clients)
    for name in sorted(certs):
        print("%-13s %s" % (name, certs[name]["pem"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
