"""Small ComfyUI custom nodes (V1 API) used by the comfyui_batch test suite.

Loaded by the test servers through tests/nodes/extra_model_paths.yaml (`custom_nodes: .`).
This module runs inside the ComfyUI server process, not in the test process.
"""

from __future__ import annotations

import os
import time
import uuid
import wave
from typing import Any

import comfy.model_management
import comfy.utils
import folder_paths
from PIL import Image

MAX_SEED = 0xFFFFFFFFFFFFFFFF


class TestSlowSampler:
    """Passes the image through after `steps` x `step_ms`, reporting progress each step.

    The image is returned unchanged: `seed` only changes the cache key, so a new seed forces
    a re-run exactly as with a real sampler.
    """

    CATEGORY = "batch_tests"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": ("IMAGE",),
                "steps": ("INT", {"default": 5, "min": 1, "max": 10000}),
                "step_ms": ("INT", {"default": 60, "min": 0, "max": 60000}),
                "seed": ("INT", {"default": 0, "min": 0, "max": MAX_SEED}),
            },
            "optional": {"model": ("MODEL",)},
        }

    def run(self, image: Any, steps: int, step_ms: int, seed: int, model: Any = None) -> tuple[Any]:
        bar = comfy.utils.ProgressBar(steps)
        for _ in range(steps):
            deadline = time.monotonic() + step_ms / 1000.0
            # Sleep in slices so /interrupt stops even a long step promptly.
            while (left := deadline - time.monotonic()) > 0:
                comfy.model_management.throw_exception_if_processing_interrupted()
                time.sleep(min(left, 0.05))
            bar.update(1)  # the progress hook also raises on /interrupt
        return (image,)


class TestModelLoader:
    """Stands in for a checkpoint loader: gives a MODEL named `name`, and logs
    `TestModelLoader: loading <name>` each time it runs, which is each time ComfyUI has to
    load it again (not when its output is still cached from the prompt before)."""

    CATEGORY = "batch_tests"
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"name": ("STRING", {"default": "model-a"})}}

    def load(self, name: str) -> tuple[Any]:
        print(f"TestModelLoader: loading {name}", flush=True)
        return ({"name": name},)


class TestFail:
    """Raises `message` (an `execution_error`); with an empty message it passes the image on,
    so one batch can hold failing and succeeding jobs."""

    CATEGORY = "batch_tests"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": ("IMAGE",),
                "message": ("STRING", {"default": "boom"}),
            }
        }

    def run(self, image: Any, message: str) -> tuple[Any]:
        if message:
            raise RuntimeError(message)
        return (image,)


class TestTextOutput:
    """Output node whose only output is text (a non-file `ui` entry)."""

    CATEGORY = "batch_tests"
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"text": ("STRING", {"default": "hello", "multiline": True})}}

    def run(self, text: str) -> dict[str, Any]:
        return {"ui": {"text": [text]}}


class TestFileOutputs:
    """Output node that writes files under `ui` keys other than `images`.

    Writes one .txt (`files`), one .wav (`audio`) and one .gif (`gifs`) into the output folder.
    """

    CATEGORY = "batch_tests"
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "text": ("STRING", {"default": "hello", "multiline": True}),
                "prefix": ("STRING", {"default": "testfile"}),
            }
        }

    def run(self, text: str, prefix: str) -> dict[str, Any]:
        out_dir = folder_paths.get_output_directory()
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(prefix, out_dir)
        os.makedirs(folder, exist_ok=True)
        stem = f"{name}_{counter:05}_{uuid.uuid4().hex[:8]}"

        def entry(filename: str) -> dict[str, str]:
            return {"filename": filename, "subfolder": subfolder, "type": "output"}

        txt = f"{stem}.txt"
        with open(os.path.join(folder, txt), "w", encoding="utf-8") as f:
            f.write(text)

        wav = f"{stem}.wav"
        with wave.open(os.path.join(folder, wav), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(b"\x00\x00" * 80)  # 10 ms of silence

        gif = f"{stem}.gif"
        frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
        frames[0].save(os.path.join(folder, gif), save_all=True, append_images=frames[1:], duration=100, loop=0)

        return {
            "ui": {
                "audio": [entry(wav)],
                "gifs": [{**entry(gif), "format": "image/gif"}],
                "files": [entry(txt)],
            }
        }


NODE_CLASS_MAPPINGS = {
    "TestSlowSampler": TestSlowSampler,
    "TestModelLoader": TestModelLoader,
    "TestFail": TestFail,
    "TestTextOutput": TestTextOutput,
    "TestFileOutputs": TestFileOutputs,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "TestSlowSampler": "Test Slow Sampler",
    "TestModelLoader": "Test Model Loader",
    "TestFail": "Test Fail",
    "TestTextOutput": "Test Text Output",
    "TestFileOutputs": "Test File Outputs",
}


# --- a request log, for benchmarks ------------------------------------------------------------
# With $COMFYUI_BATCH_TEST_LOG_REQUESTS set, the server writes one line per HTTP request it
# serves ("request: GET /view?filename=..."), so a benchmark can count them in the server's log.
# ComfyUI itself logs none; the middleware goes in while the app can still take one.
REQUEST_LOG_VARIABLE = "COMFYUI_BATCH_TEST_LOG_REQUESTS"


def _log_requests() -> None:
    import server  # ComfyUI's, importable inside the server process
    from aiohttp import web

    @web.middleware
    async def log_request(request: Any, handler: Any) -> Any:
        print(f"request: {request.method} {request.path_qs}", flush=True)
        return await handler(request)

    server.PromptServer.instance.app.middlewares.append(log_request)


if os.environ.get(REQUEST_LOG_VARIABLE):
    _log_requests()
