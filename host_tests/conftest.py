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


@pytest.fixture(scope="module")
def module_broker():
    """One broker shared by a test module's tests (each uses its own node ids): mosquitto when installed, else the
    embedded one."""
    from broker import Broker

    b = Broker("auto").start()
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


@pytest.fixture(scope="session")
def esp32_micropython():
    """Path of the esp32-shaped MicroPython with the current firmware frozen in (host_tests/mpbins.py); the test is
    skipped, in one line naming the Debian package, where the i686 compiler is missing."""
    import mpbins

    return mpbins.esp32_binary()


# --- The contract, checked on every end-to-end test (host_tests/contract_check.py) ----------------------------------


@pytest.fixture(scope="session", autouse=True)
def _contract_hook():
    """Every Operator created from here on reports to contract_check (operator_client.on_new_operator)."""
    import contract_check

    installed = contract_check.install()
    yield
    if installed:
        problems = contract_check.check_new()  # what arrived after the last test's check
        if problems:
            pytest.fail(contract_check.report(problems), pytrace=False)


@pytest.fixture(autouse=True)
def _contract_check(request):
    """After each test: every message a node sent to the test's Operators matches docs/api. A module opts out with
    `CONTRACT_CHECK = False`; payloads the test published itself are never judged."""
    yield
    import contract_check

    problems = contract_check.check_new(getattr(request.module, "CONTRACT_CHECK", True))
    if problems:
        pytest.fail(contract_check.report(problems), pytrace=False)


def pytest_terminal_summary(terminalreporter):
    import contract_check

    if contract_check.counts or any(contract_check.skipped.values()):
        terminalreporter.section("contract")
        for line in contract_check.summary():
            terminalreporter.write_line(line)
