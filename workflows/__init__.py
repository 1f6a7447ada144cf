"""Deterministic orchestration only: no I/O, no database, no clocks but workflow.now()."""
