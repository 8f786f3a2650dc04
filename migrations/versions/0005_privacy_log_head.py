"""The privacy log's head, read under the journal lock in one round trip (PostgreSQL).

Revision ID: 0005
Revises: 0004

Appending to the hash chain needs the journal lock (db.journal_lock) and then the newest entry's
hash, read *after* the lock was granted: in READ COMMITTED a statement sees the database as of its
own start, so a hash read in the same statement that waited for the lock could miss the entry the
previous holder just committed. A VOLATILE function takes a fresh snapshot for each query it runs
(PostgreSQL manual, "Function Volatility Categories"), so this one locks and then reads the newest
hash in a single call: one round trip per privacy-log entry instead of two. SQLite has one writer
and needs neither (src/leerid_gateway/privacy/service.py).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FUNCTION = """
CREATE FUNCTION leerid_privacy_log_head(journal_lock_key bigint) RETURNS varchar
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  -- Only READ COMMITTED gives the read below a snapshot taken after the lock was granted.
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'leerid_privacy_log_head needs READ COMMITTED, not %',
      current_setting('transaction_isolation');
  END IF;
  PERFORM pg_advisory_xact_lock(journal_lock_key);
  RETURN (SELECT hash FROM privacy_log ORDER BY id DESC LIMIT 1);
END $$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTION.strip())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS leerid_privacy_log_head(bigint)")
