"""Security: the pack scanner (`partyflow.security.scanner`), the security levels and ComfyUI-Manager's risk
table (`.levels`) and the security-level policy (`.policy`). Nothing here imports the manager: the manager builds
on these (tests/unit/test_layering.py checks it).

Submodules are imported on use so that `import partyflow.security` stays cheap.
"""
