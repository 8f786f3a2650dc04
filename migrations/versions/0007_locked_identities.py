"""A login's identity keys locked and its identities read in one round trip (PostgreSQL).

Revision ID: 0007
Revises: 0006

Reconciliation (src/leerid_gateway/identity/service.py) takes a transaction-level advisory lock on
each of the login's keys, in sorted order, and then reads the identities those keys lead to. The
read must come *after* the locks were granted: in READ COMMITTED a statement sees the database as
of its own start, so a read in the statement that waited could miss the identity that the previous
holder of a lock just committed (and the login would then make a second identity for the same
pupil). A VOLATILE function takes a fresh snapshot for each query it runs (PostgreSQL manual,
"Function Volatility Categories"), as ``leerid_privacy_log_head`` of migration 0005 does: this one
locks, then reads, in one call. Each identity comes once per account alias it holds (and once with
a NULL alias if it holds none), oldest first; the lookup is a UNION of two index lookups (by alias,
by leer_id_uuid), never ``OR`` (which walks the whole table: docs/performance.md). SQLite has one
writer and needs neither.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FUNCTION = """
CREATE FUNCTION leerid_locked_identities(lock_keys bigint[], accounts varchar[], leer_id varchar)
RETURNS TABLE (
  id bigint, sub uuid, leer_id_uuid varchar, given_name varchar, family_name varchar,
  school_code varchar, school_name varchar, created_at timestamptz, last_login_at timestamptz,
  account_uuid varchar
)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
  -- Only READ COMMITTED gives the read below a snapshot taken after the locks were granted.
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'leerid_locked_identities needs READ COMMITTED, not %',
      current_setting('transaction_isolation');
  END IF;
  -- In the order given (the caller sorts): unnest() yields the array in order and a function
  -- scan feeds the locks one by one, so every writer takes its keys in one global order.
  PERFORM count(pg_advisory_xact_lock(k)) FROM unnest(lock_keys) AS k;
  RETURN QUERY
    SELECT i.id, i.sub, i.leer_id_uuid, i.given_name, i.family_name, i.school_code, i.school_name,
           i.created_at, i.last_login_at, a.account_uuid
    FROM identities AS i LEFT OUTER JOIN account_aliases AS a ON a.identity_id = i.id
    WHERE i.id IN (
      SELECT owned.identity_id FROM account_aliases AS owned WHERE owned.account_uuid = ANY (accounts)
      UNION
      SELECT keyed.id FROM identities AS keyed WHERE keyed.leer_id_uuid = leer_id
    )
    ORDER BY i.id;
END $$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTION.strip())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS leerid_locked_identities(bigint[], varchar[], varchar)")
