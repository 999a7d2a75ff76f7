// The streetlight controller (ESP32, no PSRAM). What differs from ESP32_GENERIC, and why.

#define MICROPY_HW_BOARD_NAME "Streetlight controller"
#define MICROPY_HW_MCU_NAME "ESP32"

// The node's DHCP name until config sets another.
#define MICROPY_PY_NETWORK_HOSTNAME_DEFAULT "streetlight"

// No Bluetooth and no ESP-NOW: a lamp post talks MQTT over Wi-Fi only. Leaving the BLE stack out (sdkconfig.board
// also turns off the controller) saves flash and the internal RAM the controller would reserve, which Wi-Fi, TLS and
// the GC heap's one growth step need.
#define MICROPY_PY_BLUETOOTH (0)
#define MICROPY_PY_ESPNOW (0)

// ROMFS at /rom (the `romfs` partition of partitions-4MiB.csv): off by default on the ESP32 in MicroPython 1.25.
// The factory firmware is frozen; the romfs partition is where updated code can run in place from flash instead of
// being loaded into the heap (docs/OTA.md, "Frozen image"). A partition table cannot change over the air, so the
// space is set aside now.
#define MICROPY_VFS_ROM (1)
