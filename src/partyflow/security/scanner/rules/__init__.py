"""One module per technique; each exposes `check(...)` returning findings."""
