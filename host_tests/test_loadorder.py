"""firmware/loadorder.py lists every module startup reaches, each after the modules it imports (read from the
source with ast: top-level imports, the ones that run when the module is imported)."""

import ast
import os

from conftest import ROOT

from firmware.loadorder import BOOT, COLD, MODULES

PACKAGES = ("firmware", "drivers", "umqtt")


def _path(name):
    return os.path.join(ROOT, "lib" if name.startswith("umqtt") else "", *name.split(".")) + ".py"


def top_level_imports(name):
    """The project modules `name` imports when it is imported (module body, including try/except blocks)."""
    with open(_path(name)) as f:
        tree = ast.parse(f.read())
    body = []
    for node in tree.body:
        body.append(node)
        if isinstance(node, ast.Try):
            body += node.body + [n for h in node.handlers for n in h.body]
    out = set()
    for node in body:
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module in PACKAGES:  # from firmware import config → the module firmware.config
                out.update(node.module + "." + a.name for a in node.names)
            else:
                out.add(node.module)
    return {m for m in out if m.split(".")[0] in PACKAGES}


def reached_from(roots):
    seen = {}
    todo = list(roots)
    while todo:
        m = todo.pop()
        if m not in seen:
            seen[m] = top_level_imports(m)
            todo += seen[m]
    return seen


def test_every_module_startup_reaches_is_listed_after_its_imports():
    graph = reached_from(("firmware.startup", "drivers.filestore") + COLD)
    assert set(graph) == set(MODULES), "loadorder.MODULES must list exactly what startup and COLD reach"
    position = {m: i for i, m in enumerate(MODULES)}
    for m in MODULES:
        for dep in graph[m]:
            assert position[dep] < position[m], "%s imports %s, which must come first" % (m, dep)
    # Not an import umqtt.simple names: it imports usocket and ussl, which umqtt_shims puts in sys.modules.
    assert position["firmware.umqtt_shims"] < position["umqtt.simple"]


def test_the_check_can_fail():
    # The same check on a list with two modules swapped: it must notice.
    graph = reached_from(("firmware.startup",))
    swapped = list(MODULES)
    i, j = swapped.index("firmware.schema"), swapped.index("firmware.config")
    swapped[i], swapped[j] = swapped[j], swapped[i]
    position = {m: k for k, m in enumerate(swapped)}
    late = [(m, d) for m in swapped if m in graph for d in graph[m] if position[d] > position[m]]
    assert late


def test_boot_lists_what_the_crash_guard_and_either_board_import_in_order():
    need = reached_from(("firmware.bootguard", "drivers.filestore", "drivers.sim", "drivers.esp32"))
    need = set(need) - {"drivers.sim", "drivers.esp32"}  # the board module itself is imported by name after BOOT
    assert need == set(BOOT), sorted(need ^ set(BOOT))
    position = {m: i for i, m in enumerate(BOOT)}
    graph = reached_from(BOOT)
    for m in BOOT:
        for dep in graph[m]:
            assert position[dep] < position[m], "%s imports %s, which must come first" % (m, dep)


def test_cold_modules_are_not_imported_by_the_modules_main_py_imports():
    # main.py leaves COLD out: if a hot module imported one at its top, it would be in RAM from boot all the same.
    hot = reached_from(("firmware.startup", "drivers.filestore"))
    assert not set(COLD) & set(hot), sorted(set(COLD) & set(hot))
    assert set(COLD) <= set(MODULES)  # a trial boot (boot.py) still imports them

