"""A batch client for ComfyUI: many jobs from one JSON file, queued, followed and saved."""

__version__ = "1.0.0"
