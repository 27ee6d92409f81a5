"""ComfyUI's `comfy_execution` package: `graph_utils` (GraphBuilder) and `graph` (ExecutionBlocker)."""
