"""ids are never reused: every SQLite table becomes AUTOINCREMENT (PostgreSQL's sequences never reuse already)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 15:30:00

SQLite gives a new row max(id) + 1, so deleting the newest overlay and adding one reused its id and made older audit
lines ambiguous. Each table is rebuilt (Alembic's batch mode copies it; migrations run with foreign keys off, so no
row of another table is touched). An id freed at the very end of a table before this migration can be given once more.
"""
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

TABLES = ("users", "user_sessions", "api_tokens", "login_attempts", "publications", "editions", "pages", "overlays",
          "published_versions", "publish_failures", "audit_log")


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        with op.batch_alter_table(table, recreate="always",
                                  table_kwargs={"sqlite_autoincrement": autoincrement}):
            pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
