"""Ask a server's own frontend how it turns GUI workflows into API prompts (for tests).

Every ComfyUI server serves its frontend at GET /. `Frontend` loads it once in a headless Chromium
page, then for each workflow calls the app's own `app.loadGraphData(workflow)` and
`app.graphToPrompt()` (the globals `window.app` of frontends 1.32 to 1.49) and returns the `output`
exactly as the Queue button would POST it (through JSON, so `undefined` fields vanish as they do
on the wire). One page serves any number of workflows (reloaded every RELOAD_EVERY loads).

What is neutralised, because it is random, clock-dependent or interactive:
- the `Comfy.DynamicPrompts` extension (`{a|b}` choices at random in prompt text) and
  `Comfy.SaveImageExtraOutput` (`%date:…%` and `%Node.widget%` in filename prefixes) are
  disabled through the `Comfy.Extension.Disabled` setting;
- drawing: the canvas's render loop is paused, the window is small and WebGL is off (drawing does
  not change the prompt, and is most of the time a load takes on a small machine);
- first-run tours, the minimap, and workflow persistence (each load would otherwise add a tab and
  a draft in localStorage and get slower and slower); the previous workflow's tab is closed after
  each load;
- dialogs about missing nodes, models and media (load options of both frontend lines).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from playwright.sync_api import Browser, Page

SETTINGS: Mapping[str, Any] = {
    "Comfy.Extension.Disabled": ["Comfy.DynamicPrompts", "Comfy.SaveImageExtraOutput"],
    "Comfy.TutorialCompleted": True,
    "Comfy.Workflow.Persist": False,
    "Comfy.Minimap.Visible": False,
}
# A small window: nothing is looked at, and every load draws the graph and its DOM widgets.
VIEWPORT = {"width": 480, "height": 360}
# Bounds: the app's start (it fetches /object_info and every extension), one workflow's load and
# conversion.
START_TIMEOUT_MS = 120_000
CONVERT_TIMEOUT_MS = 60_000

# Load options of 1.32 (show*Dialog) and 1.49 (skipAssetScans and after); each ignores the others'.
_CONVERT_JS = """async ([workflow, timeoutMs]) => {
  const store = window.app.extensionManager.workflow;
  const options = {
    showMissingNodesDialog: false, showMissingModelsDialog: false,
    skipAssetScans: true, deferWarnings: true, silentAssetErrors: true,
  };
  const convert = async () => {
    await window.app.loadGraphData(workflow, true, false, null, options);
    // Some widgets settle in animation frames (match types, autogrow); a user clicks later still.
    await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
    const { output } = await window.app.graphToPrompt();
    for (const open of [...store.openWorkflows]) {
      if (open !== store.activeWorkflow) await store.closeWorkflow(open);
    }
    return JSON.stringify(output);
  };
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no prompt after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([timeout, convert()]);
  } finally {
    clearTimeout(timer);
  }
}"""


# Three.js viewers (Load3D, Preview3D, ...) render in software here: the slowest part of loading a
# 3D template, and nothing they draw goes into a prompt except Load3D's captures, which no
# converter can make anyway (see BROWSER_MADE_INPUTS in test_convert.py). Without WebGL they
# give up at once.
_NO_WEBGL_JS = """(() => {
  const getContext = HTMLCanvasElement.prototype.getContext;
  HTMLCanvasElement.prototype.getContext = function (kind, ...rest) {
    if (kind === 'webgl' || kind === 'webgl2' || kind === 'experimental-webgl') return null;
    return getContext.call(this, kind, ...rest);
  };
})()"""
# The page grows with every load (registered subgraph types, viewers): start afresh now and then.
RELOAD_EVERY = 100


class FrontendError(Exception):
    """The frontend could not load or convert a workflow (the message says what it reported)."""


@dataclass
class Frontend:
    """One page of a server's frontend, ready to convert workflows."""

    page: Page
    server_url: str
    version: str = ""
    loads: int = 0

    def start(self) -> None:
        """(Re)load the app and wait until it is set up (bounded by START_TIMEOUT_MS)."""
        self.page.goto(self.server_url + "/")
        # positionConversion is the last thing app.setup() assigns, in 1.32 and in 1.49.
        self.page.wait_for_function("() => window.app && window.app.positionConversion", timeout=START_TIMEOUT_MS)
        self.page.evaluate("() => { window.app.canvas.pause_rendering = true }")
        self.version = str(self.page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__"))
        self.loads = 0

    def graph_to_prompt(self, workflow: Mapping[str, Any]) -> dict[str, Any]:
        """The API prompt the frontend would queue for this GUI workflow."""
        if self.loads >= RELOAD_EVERY:
            self.start()
        self.loads += 1
        errors: list[str] = []

        def on_error(error: Exception) -> None:
            errors.append(str(error))

        self.page.on("pageerror", on_error)
        try:
            text = self.page.evaluate(_CONVERT_JS, [workflow, CONVERT_TIMEOUT_MS])
        except Exception as e:  # Playwright reports page exceptions as its own Error
            raise FrontendError(f"{e}; page errors: {errors}") from None
        finally:
            self.page.remove_listener("pageerror", on_error)
        prompt: dict[str, Any] = json.loads(text)
        return prompt


def apply_settings(server_url: str, settings: Mapping[str, Any] = SETTINGS) -> None:
    """Store frontend settings on the server (they belong to its default user)."""
    request = urllib.request.Request(
        server_url + "/settings",
        data=json.dumps(dict(settings)).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


@contextmanager
def open_frontend(browser: Browser, server_url: str) -> Iterator[Frontend]:
    """The server's frontend loaded in a new page, with the settings above; closed afterwards."""
    apply_settings(server_url)
    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.add_init_script(_NO_WEBGL_JS)
        frontend = Frontend(page, server_url)
        frontend.start()
        yield frontend
    finally:
        page.close()
