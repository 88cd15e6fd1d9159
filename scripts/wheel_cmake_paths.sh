#!/usr/bin/env bash
# The ROS 2 wheels' exported CMake targets name the wheel builder's Python and numpy include dirs
# (/opt/python/cpXY-cpXY/...), which do not exist here. Point them at the venv's, so ament_cmake builds
# against the wheels work (scripts/build_interfaces.sh, a colcon workspace on top of the venv).
# Usage: bash scripts/wheel_cmake_paths.sh VENV   (idempotent: files already fixed are left alone)
set -euo pipefail
VENV=$(cd "$1" && pwd)
PY=$VENV/bin/python
PYINC=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
NPINC=$("$PY" -c "import numpy; print(numpy.get_include())")
# (grep finds nothing on a second run: that is fine.)
{ grep -rlE '/opt/python/cp[0-9]+-cp[0-9]+' "$VENV/share" --include='*.cmake' || true; } | xargs -r sed -i -E \
  -e "s#/opt/python/cp[0-9]+-cp[0-9]+/include/python3\.[0-9]+#$PYINC#g" \
  -e "s#/opt/python/cp[0-9]+-cp[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#$NPINC#g"
