# Two commands do everything: `make demo` (a virtual lamp post against a broker) and `make test` (every test).
# Both create the local virtualenv and fetch the pinned umqtt.simple on first use; no root needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UMQTT := lib/umqtt/simple.py
# End-to-end tests mostly wait on brokers and node processes: four workers keep two cores busy. A test module
# stays on one worker (--dist loadfile): some modules add up figures across their own tests.
TEST_WORKERS ?= 4

.PHONY: venv demo test bench fleet clean console mp-esp32 mp-native
venv: $(STAMP) $(UMQTT)

$(STAMP): requirements-dev.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

$(UMQTT): tools/fetch_umqtt.py | $(STAMP)
	$(BIN)/python tools/fetch_umqtt.py

demo: venv
	$(BIN)/python tools/demo.py

test: venv
	$(BIN)/python -m pytest host_tests -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The lighting engineer's console (docs/CONSOLE.md) on http://127.0.0.1:8080; with no CONSOLE_ARGS it starts the
# demo's broker and a virtual city, history in out/console.db. Example: make console CONSOLE_ARGS="--broker mqtt://..."
console: venv
	mkdir -p out
	$(BIN)/python -m console --db out/console.db $(CONSOLE_ARGS)

# The project's own MicroPython builds (tools/mpbuild.py; Debian's source, built into ~/.cache/streetlight-mp, no
# root): mp-esp32 = the ESP32-shaped one with the firmware frozen in, mp-native = the host one virtual nodes and
# fleet_sim use where it is built. Each prints the binary's path. Tests build what they need by themselves.
mp-esp32: venv
	@if command -v i686-linux-gnu-gcc >/dev/null 2>&1; then $(BIN)/python tools/mpbuild.py esp32; \
	else echo "esp32-shaped MicroPython skipped: needs i686-linux-gnu-gcc (Debian package gcc-i686-linux-gnu)"; fi

mp-native: venv
	$(BIN)/python tools/mpbuild.py native

bench: venv
	$(BIN)/python tools/bench.py

clean:
	rm -rf $(VENV) lib/umqtt build out
