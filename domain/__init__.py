"""Business rules. Imports `core` only; knows nothing of HTTP or Temporal."""
