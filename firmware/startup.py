"""From power-up to the running node: load config (with last-known-good), honour safe mode, build the board, run.

main.py calls `main(make_board)`. Whatever goes wrong here, the lamp must end up controlled: a config that does not
validate falls back to the last good one, then to defaults; an exception while starting is printed and the node
resets (counted by bootguard, so a module that raises at every start lands in safe mode after a few tries).

A remote config change that needs a restart is on *trial* (firmware/configtrial.py): if the node does not reach the
broker with the new config within `system.confirm_config_s`, the previous config is restored and the node restarts.
"""

import select

from firmware import bootguard, configtrial
from firmware import config as configmod
from firmware.compat import print_exception
from firmware.node import Node
from firmware.umqtt_hardened import Buffers


def seeded_rand(seed):
    """A small xorshift generator for backoff jitter: no `random` module needed, different per node."""
    state = [seed & 0x7FFFFFFF or 1]

    def rand(n):
        x = state[0]
        x ^= (x << 13) & 0x7FFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0x7FFFFFFF
        state[0] = x
        return x % n if n > 0 else 0

    return rand


def main(store, make_board, seed, rx=None):
    """Run the node forever. `make_board(cfg)` builds the drivers for this platform; `seed` varies per node; `rx`
    is the MQTT receive buffer main.py made before any import (used when it holds mqtt.max_payload)."""
    cfg, source, problems = configmod.load(store)
    # The MQTT buffers come first, while the heap is still in one piece: the receive buffer (mqtt.max_payload) is
    # the largest block the node ever needs, and after the first minutes of running no such block is left free.
    buffers = Buffers(cfg["mqtt"]["max_payload"], rx)
    decision = bootguard.decision
    board = make_board(cfg)
    # The watchdog runs from here on: a hang anywhere after this point (building the node, the first lamp
    # decision, the loop) ends in a reset that bootguard counts, so a release that hangs reaches safe mode too.
    board.wdt.start(cfg["system"]["wdt_ms"])
    try:
        node = Node(board, cfg, store, seeded_rand(seed), source, problems, decision["safe"], decision["why"])
        node.link_buffers = buffers
        node.trial = configtrial.on_trial(store)
        node.run(select.poll())
    except Exception as e:  # the last resort: print, then reset so that bootguard counts the crash
        print_exception(e)
        board.system.reset()
