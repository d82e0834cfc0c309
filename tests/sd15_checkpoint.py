"""A random-weight Stable Diffusion 1.5 checkpoint for tests that run the real pipeline.

Built once by build_sd15_checkpoint.py in the server venv and cached under
HOME/models-cache/ (HOME from comfy_server.comfyui_home()); the cache key covers the build
script and the ComfyUI install, so a change to either rebuilds it. Stdlib only.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
from pathlib import Path

from comfy_server import comfyui_home

BUILD_SCRIPT = Path(__file__).resolve().parent / "build_sd15_checkpoint.py"
CHECKPOINT_NAME = "v1-5-pruned-emaonly-fp16.safetensors"
VAE_NAME = "vae-ft-mse-840000-ema-pruned.safetensors"  # what the SD 1.5 fixture's VAELoader asks for


def sd15_files(home: Path | None = None) -> tuple[Path, Path]:
    """(checkpoint, vae) paths in the cache, building them first if needed (~1 min)."""
    home = home or comfyui_home()
    key = hashlib.sha256(BUILD_SCRIPT.read_bytes() + str(home.resolve()).encode()).hexdigest()[:12]
    cache = home / "models-cache"
    cache.mkdir(exist_ok=True)
    ckpt, vae = cache / f"sd15-random-{key}.safetensors", cache / f"sd15-vae-random-{key}.safetensors"
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test sessions build it only once
        if not (ckpt.exists() and vae.exists()):
            tmp_ckpt, tmp_vae = ckpt.with_suffix(".tmp"), vae.with_suffix(".tmp")
            subprocess.run(
                [
                    str(home / "venv" / "bin" / "python"),
                    str(BUILD_SCRIPT),
                    str(home / "ComfyUI"),
                    str(tmp_ckpt),
                    str(tmp_vae),
                ],
                check=True,
            )
            os.replace(tmp_vae, vae)
            os.replace(tmp_ckpt, ckpt)
            for stale in cache.glob("sd15-*"):  # ~2 GB each: drop builds from older keys
                if stale not in (ckpt, vae):
                    stale.unlink()
    return ckpt, vae


def install_sd15_checkpoint(
    server_models_dir: Path, name: str = CHECKPOINT_NAME, vae_name: str = VAE_NAME, home: Path | None = None
) -> Path:
    """Link the cached checkpoint into `server_models_dir`/checkpoints/`name` and its VAE into
    `server_models_dir`/vae/`vae_name`; returns the checkpoint link.

    `server_models_dir` is a ComfyServer's `models_dir`, which that server already searches
    (it is listed in the per-server extra_model_paths.yaml). ComfyUI rescans a model folder
    when its mtime changes, so this also works while the server is running.
    """
    ckpt, vae = sd15_files(home)
    link = server_models_dir / "checkpoints" / name
    for src, dst in ((vae, server_models_dir / "vae" / vae_name), (ckpt, link)):
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.unlink(missing_ok=True)
        dst.symlink_to(src)
    return link
