#!/usr/bin/env bash
# Creates (or completes) the project's virtual environment .venv on a machine without ROS from
# apt: pinned PyPI wheels (CPU torch from local disk, ROS 2 Kilted wheels), the project's own
# vision_msgs build when no vision_msgs is importable, and loci_ros itself in editable mode.
# Idempotent: a stamp records the hash of the inputs, so a second call returns at once.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
VENV=${LOCI_VENV:-$REPO/.venv}
PY=${PYTHON:-python3.11}
STAMP=$VENV/.loci-setup
HASH=$(cat requirements/requirements.txt requirements/constraints.txt scripts/setup_env.sh \
  scripts/build_interfaces.sh scripts/wheel_cmake_paths.sh interfaces/vision_msgs/msg/*.msg setup.py 2>/dev/null | sha256sum | cut -c1-16)

if [[ -f $STAMP && $(cat "$STAMP") == "$HASH" ]]; then
  exit 0
fi
start=$(date +%s)
echo "[setup] creating the environment in $VENV (first run: a few minutes)"
[[ -x $VENV/bin/python ]] || "$PY" -m venv "$VENV"
LOG=$VENV/setup.log
: > "$LOG"
# Unset the bootstrapper's guard so the venv's own library path is used (see docs/ros.md, ROS 2 from PyPI).
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE
"$VENV/bin/python" -m pip install -q --disable-pip-version-check \
  -r requirements/requirements.txt -c requirements/constraints.txt >>"$LOG" 2>&1 || {
  grep -v "^WARNING: Location" "$LOG" | tail -30; echo "[setup] pip install failed (log: $LOG)"; exit 1; }
# torch must be the CPU wheel pinned above; anything else means a requirement pulled another build.
"$VENV/bin/python" - <<'PYEOF'
import torch, sys
if torch.__version__.split("+")[0] != "2.13.0":
    sys.exit(f"[setup] wrong torch {torch.__version__}: expected the local 2.13.0 CPU wheel")
PYEOF
if ! "$VENV/bin/python" -c "import vision_msgs.msg" >/dev/null 2>&1; then
  echo "[setup] vision_msgs not importable: building interfaces/vision_msgs into the venv"
  bash scripts/build_interfaces.sh "$VENV" >>"$LOG" 2>&1 || {
    tail -30 "$LOG"; echo "[setup] interface build failed (log: $LOG)"; exit 1; }
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation \
  -e . >>"$LOG" 2>&1 || { tail -20 "$LOG"; echo "[setup] installing loci_ros failed"; exit 1; }
echo "$HASH" > "$STAMP"
echo "[setup] done in $(( $(date +%s) - start )) s; venv size $(du -sh "$VENV" | cut -f1)"
