"""Authentication: passwords, sessions (access + rotating refresh tokens), one-time codes, rate limits."""
