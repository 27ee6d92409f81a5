"""Workflows written in Python: a builder checked against the installed nodes, stubs for editors, export for the
editor. See docs/python-api.md."""

from partyflow.builder.workflow import BuilderError, InputRef, NodeHandle, Output, Workflow

__all__ = ["BuilderError", "InputRef", "NodeHandle", "Output", "Workflow"]
