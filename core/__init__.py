"""Infrastructure: settings, database, security primitives, authorization, storage, mail, Temporal."""
