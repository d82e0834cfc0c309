#!/usr/bin/env bash
# The whole test suite, on a fresh machine or a used one: makes the project's venv (.venv),
# builds or reuses the cached ComfyUI test server (tests/comfyui_env.sh), then runs pytest.
# Extra arguments go to pytest, e.g. `bash tests/run.sh -m "not slow"` or `-k resume`.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${COMFYUI_BATCH_VENV:-.venv}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
quietly() {  # pip is chatty on this kind of machine; show its output only when it fails
  "$@" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
}

[ -x "$venv/bin/python" ] || quietly python3 -m venv "$venv"
quietly "$venv/bin/python" -m pip install --upgrade pip
quietly "$venv/bin/python" -m pip install -e ".[test]"

COMFYUI_HOME=$(bash tests/comfyui_env.sh)
export COMFYUI_HOME
echo "ComfyUI test server: $COMFYUI_HOME" >&2

exec "$venv/bin/python" -m pytest "$@"
