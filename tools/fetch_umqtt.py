"""Fetch the pinned umqtt.simple from the package index and place it in lib/umqtt/.

PyPI holds micropython-umqtt.simple only as a 2017 sdist without setup.py, which pip refuses to install. We read
the index's PEP 503 "simple" page ourselves (the same index pip uses: PIP_INDEX_URL, pip's configured index-url,
then pip's own default), download the sdist, and check two pinned sha256 digests: the archive's and the module's.
The bytes in lib/umqtt/simple.py are the bytes the unix-port tests run and the bytes a device bundle carries.
"""

import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile
import urllib.parse
import urllib.request

PROJECT = "micropython-umqtt.simple"
VERSION = "1.3.4"
SDIST_SHA256 = "b6a2520239e3992c63a7de9370ee9b3d9d27819a90359c521f1c0f7ccab8d12f"
MODULE_SHA256 = "8555d2f654deb8eb0d724f79b0811a78cc94029d070f3d96bbd74288653d63a5"
MEMBER = "micropython-umqtt.simple-%s/umqtt/simple.py" % VERSION

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEST = os.path.join(ROOT, "lib", "umqtt")


def index_urls():
    """The indexes pip would use, most specific first."""
    urls = []
    if os.environ.get("PIP_INDEX_URL"):
        urls.append(os.environ["PIP_INDEX_URL"])
    try:
        out = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                             capture_output=True, text=True, timeout=60)
        if out.returncode == 0 and out.stdout.strip():
            urls.append(out.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        from pip._internal.models.index import PyPI  # pip's own default index
        urls.append(PyPI.simple_url)
    except ImportError:
        pass
    return urls


def find_sdist(index):
    page_url = index.rstrip("/") + "/" + PROJECT + "/"
    with urllib.request.urlopen(page_url, timeout=60) as r:
        page = r.read().decode("utf-8", "replace")
    wanted = "%s-%s.tar.gz" % (PROJECT, VERSION)
    for href in re.findall(r'href="([^"]+)"', page):
        if href.split("#")[0].endswith(wanted):
            return urllib.parse.urljoin(page_url, href.split("#")[0])
    raise LookupError("%s not listed on %s" % (wanted, page_url))


def main():
    target = os.path.join(DEST, "simple.py")
    if os.path.exists(target) and hashlib.sha256(open(target, "rb").read()).hexdigest() == MODULE_SHA256:
        return 0
    errors = []
    for index in index_urls():
        try:
            url = find_sdist(index)
            with urllib.request.urlopen(url, timeout=120) as r:
                blob = r.read()
        except (OSError, LookupError, ValueError) as e:
            errors.append("%s: %s" % (index, e))
            continue
        got = hashlib.sha256(blob).hexdigest()
        if got != SDIST_SHA256:
            errors.append("%s: sdist sha256 %s, expected %s" % (index, got, SDIST_SHA256))
            continue
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            module = tar.extractfile(MEMBER).read()
        if hashlib.sha256(module).hexdigest() != MODULE_SHA256:
            errors.append("%s: umqtt/simple.py digest mismatch" % index)
            continue
        os.makedirs(DEST, exist_ok=True)
        with open(os.path.join(DEST, "__init__.py"), "wb"):
            pass
        with open(target + ".tmp", "wb") as f:
            f.write(module)
        os.replace(target + ".tmp", target)
        print("fetched umqtt.simple %s (sha256 verified) into lib/umqtt/" % VERSION)
        return 0
    print("could not fetch umqtt.simple %s:\n  %s" % (VERSION, "\n  ".join(errors)), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
