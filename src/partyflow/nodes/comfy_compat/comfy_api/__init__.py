"""ComfyUI's `comfy_api` package: the versioned node API; `latest` is the one partyflow implements."""
