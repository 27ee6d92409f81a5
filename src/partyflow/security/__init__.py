"""Security: the pack scanner (`partyflow.security.scanner`) and the security-level policy (`.policy`).

Submodules are imported on use so that `import partyflow.security` stays cheap.
"""
