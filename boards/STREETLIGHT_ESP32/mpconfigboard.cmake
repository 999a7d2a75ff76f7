# The streetlight controller: an ESP32 (no PSRAM) on a 4 MB flash module, with the firmware frozen in.
# Built from MicroPython's ports/esp32 with `make BOARD_DIR=<this folder>` (README.md here gives every command).
set(IDF_TARGET esp32)

# The partition table lives in this folder, outside the MicroPython tree, so its path must be absolute; ESP-IDF reads
# it from an sdkconfig value, which this writes into the build folder at configure time.
file(WRITE ${CMAKE_BINARY_DIR}/sdkconfig.streetlight_partitions
    "CONFIG_PARTITION_TABLE_CUSTOM=y\nCONFIG_PARTITION_TABLE_CUSTOM_FILENAME=\"${MICROPY_BOARD_DIR}/partitions-4MiB.csv\"\n")

set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    ${MICROPY_BOARD_DIR}/sdkconfig.board
    ${CMAKE_BINARY_DIR}/sdkconfig.streetlight_partitions
)

set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
