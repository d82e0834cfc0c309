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

# Headless Chromium, for the tests that load pages (the gallery, the server's own frontend).
# Driven through Playwright with this executable: Playwright's own browser download cannot work here.
if ! command -v chromium >/dev/null; then
  quietly apt-get update
  quietly env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
fi

[ -x "$venv/bin/python" ] || quietly python3 -m venv "$venv"
quietly "$venv/bin/python" -m pip install --upgrade pip
quietly "$venv/bin/python" -m pip install -e ".[test]"

COMFYUI_HOME=$(bash tests/comfyui_env.sh)
export COMFYUI_HOME
echo "ComfyUI test server: $COMFYUI_HOME" >&2

exec "$venv/bin/python" -m pytest "$@"
