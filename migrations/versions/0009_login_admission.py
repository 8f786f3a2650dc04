"""A returning pupil's login admitted in one call (PostgreSQL).

Revision ID: 0009
Revises: 0008

Most logins are a returning pupil's: every account the login names is already an alias of one
identity, and that identity is the pupil's own (its leer_id_uuid is the login's, or the login has
none). Reconciliation (src/leerid_gateway/identity/service.py, docs/identity.md) then changes
nothing but the attributes (rule 6), and the login writes a privacy-log entry and a session. This
function does all of it in one round trip, and anything else not at all:

1. It takes the identity locks, as 0007's ``leerid_locked_identities`` does (waiting, in the order
   given), or, for a further round of the lock closure, without waiting (``wait`` false); if one of
   those is held elsewhere it answers one row ``contended`` and reads nothing.
2. It reads the identities the login's keys lead to, with every alias they hold, after the locks
   were granted (VOLATILE: a fresh snapshot per query), and answers them as ``found`` rows: the
   same rows as 0007's, for the caller's own rules.
3. Only when ``admit`` is set and the rows show the case above, with every key of that identity
   among the keys the transaction holds (``held_accounts``, ``held_leer_ids``: the lock closure is
   complete), does it write: the attributes; the session; then, under the journal lock (the last
   lock a transaction takes), the privacy-log entry, chained to the head. The entry's hash is
   finished here from the three parts of its canonical encoding (around the previous hash and the
   sub, ``chain.entry_hash_parts_around_sub``), exactly as 0008 does from two; the caller checks it
   before its transaction commits. One more row, ``admitted``, carries the identity as written and
   the entry's id, previous hash and hash.

The decision "nothing but rule 6" is a precondition, not a second copy of the rules: whatever it
does not recognise (a new pupil, an identification, a merge, a new alias, another pupil's account,
keys not yet locked) it leaves to the caller, whose rules decide from the ``found`` rows. The
property test of the rules (tests/identity/test_reconcile_model.py) checks that both ways end in
the same state. 0007's function stays for replicas of the previous version during a rolling update.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SIGNATURE = (
    "bigint[], boolean, varchar[], varchar[], varchar[], varchar, boolean, "
    "varchar, varchar, varchar, varchar, timestamptz, "
    "bigint, varchar, bytea, bytea, bytea, timestamptz, varchar, varchar, json, varchar, varchar, json, "
    "varchar, bytea, timestamptz, timestamptz"
)

_FUNCTION = """
CREATE FUNCTION leerid_login_admission(
  lock_keys bigint[], wait boolean, held_accounts varchar[], held_leer_ids varchar[],
  accounts varchar[], leer_id varchar, admit boolean,
  p_given_name varchar, p_family_name varchar, p_school_code varchar, p_school_name varchar,
  p_now timestamptz,
  journal_lock_key bigint, genesis varchar, hashed_before bytea, hashed_between bytea, hashed_after bytea,
  p_at timestamptz, p_actor varchar, p_action varchar, p_fields json, p_purpose varchar,
  p_request_id varchar, p_data json,
  p_session_id varchar, p_secret_hash bytea, p_session_at timestamptz, p_absolute_expires_at timestamptz
) RETURNS TABLE (
  outcome varchar, id bigint, sub uuid, leer_id_uuid varchar, given_name varchar, family_name varchar,
  school_code varchar, school_name varchar, created_at timestamptz, last_login_at timestamptz,
  account_uuid varchar, entry_id bigint, prev_entry_hash varchar, entry_hash varchar
)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
  found_row record;
  -- The last identity read: the only one, if the login is a returning pupil's.
  the_id bigint;
  the_sub uuid;
  the_leer_id varchar;
  the_created_at timestamptz;
  found_identities integer := 0;
  aliased varchar[] := '{}';  -- the aliases of the identities read
  closed boolean := true;     -- every alias read is among the accounts whose keys are held
  prev varchar;
  digest varchar;
  new_entry bigint;
BEGIN
  -- Only READ COMMITTED gives the reads below a snapshot taken after the locks were granted.
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'leerid_login_admission needs READ COMMITTED, not %',
      current_setting('transaction_isolation');
  END IF;
  IF wait THEN
    -- In the order given (the caller sorts): unnest() yields the array in order and a function
    -- scan feeds the locks one by one, so every writer takes its keys in one global order.
    PERFORM count(pg_advisory_xact_lock(k)) FROM unnest(lock_keys) AS k;
  ELSIF NOT COALESCE((SELECT bool_and(pg_try_advisory_xact_lock(k)) FROM unnest(lock_keys) AS k), true) THEN
    outcome := 'contended';
    RETURN NEXT;
    RETURN;
  END IF;

  FOR found_row IN
    SELECT i.id, i.sub, i.leer_id_uuid, i.given_name, i.family_name, i.school_code, i.school_name,
           i.created_at, i.last_login_at, a.account_uuid
    FROM identities AS i LEFT OUTER JOIN account_aliases AS a ON a.identity_id = i.id
    WHERE i.id IN (
      SELECT owned.identity_id FROM account_aliases AS owned WHERE owned.account_uuid = ANY (accounts)
      UNION
      SELECT keyed.id FROM identities AS keyed WHERE keyed.leer_id_uuid = leer_id
    )
    ORDER BY i.id
  LOOP
    IF the_id IS DISTINCT FROM found_row.id THEN
      found_identities := found_identities + 1;
      the_id := found_row.id;
      the_sub := found_row.sub;
      the_leer_id := found_row.leer_id_uuid;
      the_created_at := found_row.created_at;
    END IF;
    IF found_row.account_uuid IS NOT NULL THEN
      aliased := aliased || found_row.account_uuid;
      closed := closed AND found_row.account_uuid = ANY (held_accounts);
    END IF;
    RETURN QUERY SELECT 'found'::varchar, found_row.id, found_row.sub, found_row.leer_id_uuid,
      found_row.given_name, found_row.family_name, found_row.school_code, found_row.school_name,
      found_row.created_at, found_row.last_login_at, found_row.account_uuid,
      NULL::bigint, NULL::varchar, NULL::varchar;
  END LOOP;

  IF (
    admit
    AND found_identities = 1
    AND closed
    AND (the_leer_id IS NULL OR the_leer_id = ANY (held_leer_ids))
    -- The pupil's own identity: no identification (rule 3), no other pupil's (rule 5).
    AND (leer_id IS NULL OR the_leer_id IS NOT DISTINCT FROM leer_id)
    -- Every account of the login is already its alias: nothing to claim (rule 2).
    AND accounts <@ aliased
  ) IS NOT TRUE THEN  -- NULL anywhere: not the case above either
    RETURN;
  END IF;

  -- Rule 6: the latest login's attributes, nothing else.
  UPDATE identities AS target
  SET given_name = p_given_name, family_name = p_family_name, school_code = p_school_code,
      school_name = p_school_name, last_login_at = p_now
  WHERE target.id = the_id;
  INSERT INTO sessions AS s (id, secret_hash, identity_id, created_at, last_seen_at, absolute_expires_at)
  VALUES (p_session_id, p_secret_hash, the_id, p_session_at, p_session_at, p_absolute_expires_at);
  -- The journal lock last (as 0008): no row change waits while it is held.
  PERFORM pg_advisory_xact_lock(journal_lock_key);
  prev := COALESCE((SELECT head.hash FROM privacy_log AS head ORDER BY head.id DESC LIMIT 1), genesis);
  digest := encode(sha256(hashed_before || convert_to(prev, 'UTF8') || hashed_between
                          || convert_to(the_sub::text, 'UTF8') || hashed_after), 'hex');
  INSERT INTO privacy_log AS entry
    (at, actor, action, sub, fields, purpose, request_id, data, prev_hash, hash)
  VALUES (p_at, p_actor, p_action, the_sub, p_fields, p_purpose, p_request_id, p_data, prev, digest)
  RETURNING entry.id INTO new_entry;

  -- The identity as written, and the entry.
  RETURN QUERY SELECT 'admitted'::varchar, the_id, the_sub, the_leer_id, p_given_name, p_family_name,
    p_school_code, p_school_name, the_created_at, p_now, NULL::varchar, new_entry, prev, digest;
END $$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTION.strip())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS leerid_login_admission({_SIGNATURE})")
