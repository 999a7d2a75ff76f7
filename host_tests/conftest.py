"""pytest set-up shared by every host test: import paths and the locations of the project's tools."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (ROOT, os.path.join(ROOT, "lib"), os.path.join(ROOT, "host_tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

import pytest  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "tools"))


def broker_kinds():
    from broker import available_kinds

    return available_kinds()


@pytest.fixture(params=broker_kinds())
def any_broker(request):
    """A fresh broker of each available kind (mosquitto when installed, and always the embedded one)."""
    from broker import Broker

    b = Broker(request.param).start()
    yield b
    b.close()


@pytest.fixture
def broker():
    """One fresh broker: mosquitto when installed, else the embedded one."""
    from broker import Broker

    b = Broker("auto").start()
    yield b
    b.close()


@pytest.fixture
def node_factory(tmp_path):
    """make(broker, **overrides) → a started VirtualNode running the real main.py under the unix port."""
    from nodekit import make_node

    made = []

    def make(broker, name="n1", start=True, **kw):
        vn = make_node(str(tmp_path / name), broker, name, **kw)
        made.append(vn)
        if start:
            vn.start()
        return vn

    yield make
    for vn in made:
        vn.stop()
