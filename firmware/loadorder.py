"""The modules the node runs on, leaf modules first: main.py and boot.py import them one by one in this order.

Why: an import executes the module, whose own imports execute theirs, and so on, and every level holds its C stack
frames until the deepest one is done. Reached through `startup` (startup → configtrial → config → control →
program → schema ...), the chain needed about 34 KB of C stack on the esp32-shaped build, where an ESP32's
MicroPython task has 15 KB. Imported in this order, each module finds what it imports already loaded, and the whole
set fits in 11 KB (measured with MICROPY_C_STACK_LIMIT; host_tests/test_esp32_runtime.py).

host_tests/test_loadorder.py checks that every module startup reaches is here and after everything it imports, and
umqtt.simple after firmware.umqtt_shims (which supplies the usocket and ussl it imports).

BOOT is the short list boot.py's crash guard needs on a normal boot (the store, bootguard, and what either board
module imports): boot.py imports only these, so that main.py's MQTT receive buffer comes before the rest of the
firmware. A trial boot of a new version imports all of MODULES in boot.py, to roll back before anything runs.

COLD are the modules of MODULES that the node loads only when it needs them (firmware/cold.py): the update agent
and the signatures (firmware/otadoc.py says why). main.py leaves them out; a trial boot still imports them, so a
release whose update code does not load is rolled back before it runs.
"""

BOOT = (
    "firmware.compat",
    "drivers.filestore",
    "firmware.schema",
    "firmware.timebase",
    "firmware.astro",
    "firmware.bootguard",
    "firmware.hw_config",
)

MODULES = (
    "firmware.compat",
    "drivers.filestore",
    "firmware.schema",
    "firmware.timebase",
    "firmware.astro",
    "firmware.bootguard",
    "firmware.clo",
    "firmware.cold",
    "firmware.otadoc",
    "firmware.program",
    "firmware.bytering",
    "firmware.repeats",
    "firmware.commands",
    "firmware.photocell",
    "firmware.control",
    "firmware.faults",
    "firmware.hw_config",
    "firmware.lampout",
    "firmware.metering",
    "firmware.umqtt_shims",
    "umqtt.simple",
    "firmware.umqtt_hardened",
    "firmware.mqtt_link",
    "firmware.config",
    "firmware.configtrial",
    "firmware.logring",
    "firmware.persist",
    "firmware.version",
    "firmware.node",
    "firmware.startup",
    "firmware.signing",
    "firmware.ota",
)

COLD = (
    "firmware.signing",
    "firmware.ota",
)
