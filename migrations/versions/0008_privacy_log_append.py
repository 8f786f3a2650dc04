"""A privacy-log entry appended, chained to the head, in one round trip (PostgreSQL).

Revision ID: 0008
Revises: 0007

An entry's hash covers the previous entry's hash (src/leerid_gateway/privacy/chain.py), which is only
known under the journal lock. Migration 0005 took the lock and read the head in one call; the entry
then needed a second statement. Here the function takes the lock, reads the head (a VOLATILE
function: a fresh snapshot after the lock was granted, PostgreSQL manual, "Function Volatility
Categories"), finishes the hash and inserts the entry. The chain is unchanged: the caller sends the
canonical encoding of the entry in two parts around the previous hash (``entry_hash_parts``), the
function hashes ``before || prev || after`` with SHA-256: the parts arrive as the UTF-8 bytes
``entry_hash`` hashes (bytea, so no text conversion can touch them, whatever the database's
encoding), the previous hash is 64 hex digits. It returns the previous hash with the new one, and
the caller checks the two agree before its transaction commits. SQLite has one writer and keeps its
two statements. ``leerid_privacy_log_head`` (0005) stays: replicas of the previous version call it
until a rolling update has replaced them.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FUNCTION = """
CREATE FUNCTION leerid_privacy_log_append(
  journal_lock_key bigint, genesis varchar, hashed_before bytea, hashed_after bytea,
  p_at timestamptz, p_actor varchar, p_action varchar, p_sub uuid, p_fields json,
  p_purpose varchar, p_request_id varchar, p_data json
) RETURNS TABLE (entry_id bigint, prev_entry_hash varchar, entry_hash varchar)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  prev varchar;
  digest varchar;
BEGIN
  -- Only READ COMMITTED gives the read below a snapshot taken after the lock was granted.
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'leerid_privacy_log_append needs READ COMMITTED, not %',
      current_setting('transaction_isolation');
  END IF;
  PERFORM pg_advisory_xact_lock(journal_lock_key);
  prev := COALESCE((SELECT head.hash FROM privacy_log AS head ORDER BY head.id DESC LIMIT 1), genesis);
  digest := encode(sha256(hashed_before || convert_to(prev, 'UTF8') || hashed_after), 'hex');
  RETURN QUERY
    INSERT INTO privacy_log AS entry
      (at, actor, action, sub, fields, purpose, request_id, data, prev_hash, hash)
    VALUES (p_at, p_actor, p_action, p_sub, p_fields, p_purpose, p_request_id, p_data, prev, digest)
    RETURNING entry.id, entry.prev_hash, entry.hash;
END $$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTION.strip())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION IF EXISTS leerid_privacy_log_append("
            "bigint, varchar, bytea, bytea, timestamptz, varchar, varchar, uuid, json, varchar, varchar, json)"
        )
