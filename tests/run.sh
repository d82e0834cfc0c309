#!/usr/bin/env bash
# The whole test suite, on a fresh machine or a used one: makes the project's venv (.venv),
# builds or reuses the cached ComfyUI test servers, one per server line (tests/comfyui_env.sh), then
# runs pytest. COMFYUI_LINES=0.33.0 picks lines; COMFYUI_SOURCE=/path/to/ComfyUI builds the 2026 line
# from a checkout of your own.
# Extra arguments go to pytest, e.g. `bash tests/run.sh -m "not slow"` or `-k resume`.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${COMFYUI_BATCH_VENV:-.venv}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
quietly() {  # pip is chatty on this kind of machine; show its output only when it fails
  "$@" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
}

# Headless Chromium, for the tests that load pages (the gallery, the server's own frontend).
# Driven through Playwright with this executable: Playwright's own browser download cannot work here.
if ! command -v chromium >/dev/null; then
  quietly apt-get update
  quietly env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
fi

# The test servers (one per ComfyUI line) build in the background while the project's venv is made:
# the first run on a fresh machine spends most of its time in pip.
lines=${COMFYUI_LINES:-0.3.75,0.33.0}
declare -A building
for line in ${lines//,/ }; do
  bash tests/comfyui_env.sh "$line" >"$log.$line" 2>"$log.$line.err" &
  building[$line]=$!
done

[ -x "$venv/bin/python" ] || quietly python3 -m venv "$venv"
quietly "$venv/bin/python" -m pip install --upgrade pip
quietly "$venv/bin/python" -m pip install -e ".[test]"

for line in "${!building[@]}"; do
  status=0
  wait "${building[$line]}" || status=$?
  if [ "$status" = 0 ]; then
    home=$(tail -n 1 "$log.$line")
    export "COMFYUI_HOME_${line//./_}=$home"
    echo "ComfyUI $line test server: $home" >&2
  elif [ "$status" = 3 ]; then  # its source is not on this machine: the tests say so (skip, or fail in CI)
    echo "ComfyUI $line test server: $(cat "$log.$line.err")" >&2
  else
    cat "$log.$line.err" >&2
    exit 1
  fi
  rm -f "$log.$line" "$log.$line.err"
done

exec "$venv/bin/python" -m pytest "$@"
