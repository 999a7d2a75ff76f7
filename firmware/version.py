"""The version of this firmware image: reported in the birth message and compared by OTA before an update."""

# MAJOR.MINOR.PATCH, plain ints. tools/ota.py rewrites this file inside an update bundle with the bundle's version,
# so the node always reports the version of the slot it actually runs.
VERSION = "0.1.0"
