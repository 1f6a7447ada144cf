"""What activities need, built once by the worker (and by tests) and handed to the activity classes."""

from __future__ import annotations

from dataclasses import dataclass

from core.authz import Authorizer
from core.db import Database, ReadDatabase
from core.engine import WorkflowEngine
from core.mail import MailTransport
from core.settings import Settings
from core.storage import ObjectStorage


@dataclass
class ActivityDeps:
    settings: Settings
    db: Database
    authorizer: Authorizer
    storage: ObjectStorage
    mail: MailTransport
    engine: WorkflowEngine | None = None  # for activities that ask the engine about other workflows
    # The read replica (DATABASE_READ_URL) for reads that tolerate its lag; None: they read from `db`.
    read_database: ReadDatabase | None = None

    @property
    def reads(self) -> ReadDatabase:
        return self.read_database or ReadDatabase(self.db)
