#!/bin/sh
# Build the mlipprops/allegro LAMMPS pair-style plugin for the Python environment of $PYTHON (default python3):
#   build/build_plugin.sh [--force] [--verbose] [--check] [--jobs N]
# Same as `mlipprops build-plugin`.
exec "${PYTHON:-python3}" -m mlipprops.plugin "$@"
