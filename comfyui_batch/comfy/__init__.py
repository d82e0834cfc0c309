"""Everything that knows ComfyUI and nothing of batches: one server's HTTP API and event
stream, its node definitions, converting GUI-format workflows, validating API graphs, and
starting servers of our own."""
