"""The newest migration's revision id, known without importing Alembic.

``engine.migrate`` and ``peek`` compare it with the database's ``alembic_version`` (one cheap
query): Alembic, a quarter of a second to import, is loaded only when a migration must run.
A test checks it against the scripts in ``migrations/versions``: a new migration bumps it.
"""

from __future__ import annotations

HEAD_REVISION = "0008"
