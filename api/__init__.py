"""HTTP only: parse, authorize, call a service or a workflow, map errors to status codes."""
