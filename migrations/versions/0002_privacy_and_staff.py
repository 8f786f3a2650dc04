"""Privacy and staff (issue 4): staff credentials for /admin, a hash-chained, append-only privacy log.

Revision ID: 0002
Revises: 0001

Existing privacy-log entries are chained in id order (their ``data`` is empty). A trigger refuses
UPDATE on ``privacy_log`` on both backends (protocol art. 6: the log is append-only; only the
retention purge removes its oldest entries). Note for later migrations: a SQLite batch ALTER of
``privacy_log`` recreates the table and drops the trigger, so recreate it there.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from leerid_gateway.db import UTCDateTime
from leerid_gateway.privacy.chain import GENESIS, entry_hash

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PG_APPEND_ONLY = [
    """
    CREATE FUNCTION leerid_privacy_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION 'privacy_log is append-only';
    END $$
    """,
    """
    CREATE TRIGGER privacy_log_append_only BEFORE UPDATE ON privacy_log
      FOR EACH ROW EXECUTE FUNCTION leerid_privacy_log_append_only()
    """,
]
_SQLITE_APPEND_ONLY = """
CREATE TRIGGER privacy_log_append_only BEFORE UPDATE ON privacy_log
BEGIN
  SELECT RAISE(ABORT, 'privacy_log is append-only');
END
"""


def upgrade() -> None:
    op.create_table(
        "staff_members",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=30), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_members")),
        sa.UniqueConstraint("name", name=op.f("uq_staff_members_name")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_staff_members_key_hash")),
    )

    with op.batch_alter_table("privacy_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_privacy_log_actor"), ["actor"], unique=False)

    _chain_existing_entries()

    with op.batch_alter_table("privacy_log", schema=None) as batch_op:
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=False)

    if op.get_bind().dialect.name == "postgresql":
        for statement in _PG_APPEND_ONLY:  # one per call: asyncpg prepares each
            op.execute(statement)
    else:
        op.execute(_SQLITE_APPEND_ONLY)


def _chain_existing_entries() -> None:
    log = sa.table(
        "privacy_log",
        sa.column("id", sa.BigInteger()),
        sa.column("at", UTCDateTime()),
        sa.column("actor", sa.String()),
        sa.column("action", sa.String()),
        sa.column("sub", sa.Uuid()),
        sa.column("fields", sa.JSON()),
        sa.column("purpose", sa.String()),
        sa.column("request_id", sa.String()),
        sa.column("prev_hash", sa.String()),
        sa.column("hash", sa.String()),
    )
    bind = op.get_bind()
    prev = GENESIS
    rows = bind.execute(
        sa.select(
            log.c.id,
            log.c.at,
            log.c.actor,
            log.c.action,
            log.c.sub,
            log.c.fields,
            log.c.purpose,
            log.c.request_id,
        ).order_by(log.c.id)
    ).all()
    for row in rows:
        digest = entry_hash(
            prev,
            at=row.at,
            actor=row.actor,
            action=row.action,
            sub=row.sub,
            fields=row.fields or [],
            purpose=row.purpose,
            request_id=row.request_id,
            data=None,
        )
        bind.execute(sa.update(log).where(log.c.id == row.id).values(prev_hash=prev, hash=digest))
        prev = digest


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS privacy_log_append_only ON privacy_log")
        op.execute("DROP FUNCTION IF EXISTS leerid_privacy_log_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS privacy_log_append_only")
    with op.batch_alter_table("privacy_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_privacy_log_actor"))
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("data")
    op.drop_table("staff_members")
