"""The migration chain is numbered: each revision's id is the next four-digit number (`0007`), its file
`0007_<slug>.py`, and it revises the one before. `make migration name=...` and autogenerate (migrations/env.py)
both take the next id from here, so neither leaves a random id in the chain.

    python -m migrations.numbering    # prints the next id (run from the project root)
"""

from __future__ import annotations

import re

from alembic.config import Config
from alembic.script import ScriptDirectory

_NUMBER = re.compile(r"^(\d{4})(?:_|$)")


def next_revision_id(script: ScriptDirectory) -> str:
    numbers = [int(match.group(1)) for rev in script.walk_revisions() if (match := _NUMBER.match(rev.revision))]
    return f"{max(numbers, default=0) + 1:04d}"


if __name__ == "__main__":
    print(next_revision_id(ScriptDirectory.from_config(Config("alembic.ini"))))
