#!/usr/bin/env bash
# Builds the project's own interface package interfaces/vision_msgs with the rosidl generators
# that the ROS 2 PyPI wheels ship, and installs it into a virtual environment, so that
# `from vision_msgs.msg import Detection2DArray` works for rclpy without a ROS install.
#
# Usage: bash scripts/build_interfaces.sh VENV [JOBS]
#   VENV  the venv that already holds ros-rclpy, the message wheels, ament_cmake,
#         rosidl_default_generators and catkin-pkg (requirements/requirements.txt)
#   JOBS  parallel compile jobs (default 2)
#
# Idempotent: the build directory (.build-interfaces/, gitignored) is recreated on every run and
# the path fix below only touches files that still need it. Background: docs/ros.md (ROS 2 from PyPI).
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 VENV [JOBS]" >&2
  exit 2
fi
REPO=$(cd "$(dirname "$0")/.." && pwd)
VENV=$(cd "$1" && pwd)
JOBS=${2:-2}
SRC=$REPO/interfaces/vision_msgs
BUILD=$REPO/.build-interfaces/vision_msgs
PY=$VENV/bin/python

[[ -x $PY ]] || { echo "[build_interfaces] no python in $VENV" >&2; exit 1; }
for tool in cmake make c++; do
  command -v "$tool" >/dev/null || { echo "[build_interfaces] '$tool' not found (need cmake, make, a C/C++ compiler)" >&2; exit 1; }
done

# A guard variable inherited from another venv's Python would make the venv's interpreter skip
# the ros-wheels-bootstrapper re-exec that puts $VENV/lib on LD_LIBRARY_PATH (docs/ros.md).
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE
start=$(date +%s)

bash "$REPO/scripts/wheel_cmake_paths.sh" "$VENV"

# ament/rosidl scripts run `python3`; it must be the venv's (catkin_pkg, empy, lark live there).
export PATH=$VENV/bin:$PATH
export AMENT_PREFIX_PATH=$VENV CMAKE_PREFIX_PATH=$VENV

rm -rf "$BUILD"; rmdir "$REPO/.build-interfaces" 2>/dev/null || true
mkdir -p "$BUILD"
cmake -S "$SRC" -B "$BUILD" \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$VENV" \
  -DPython3_EXECUTABLE="$PY" \
  -DBUILD_TESTING=OFF
cmake --build "$BUILD" -j "$JOBS"
cmake --install "$BUILD"
rm -rf "$BUILD"; rmdir "$REPO/.build-interfaces" 2>/dev/null || true

# A fresh interpreter of the venv must now import the bindings (C extension + .so in $VENV/lib).
"$PY" -c "from vision_msgs.msg import Detection2DArray; Detection2DArray()" || {
  echo "[build_interfaces] built and installed, but 'from vision_msgs.msg import Detection2DArray' fails" >&2
  exit 1
}
echo "[build_interfaces] vision_msgs installed into $VENV in $(( $(date +%s) - start )) s"
