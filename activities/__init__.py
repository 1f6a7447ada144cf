"""Side effects for workflows. Each activity is a thin wrapper: open a session, call a domain service, commit."""
