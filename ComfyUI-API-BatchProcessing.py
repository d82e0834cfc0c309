#!/usr/bin/env python3
"""Runs a ComfyUI batch file: python ComfyUI-API-BatchProcessing.py [BATCH.json] (see --help)."""

import sys
from pathlib import Path

# Run from a checkout without installing: the package sits beside this script.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from comfyui_batch.cli import console_script

if __name__ == "__main__":
    console_script()
