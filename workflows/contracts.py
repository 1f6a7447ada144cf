"""Workflow ids, inputs and results. They are stored in workflow histories forever: change them compatibly
(add optional fields with defaults; never rename or remove)."""

from __future__ import annotations
