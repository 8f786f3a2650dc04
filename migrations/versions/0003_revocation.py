"""Token revocation (RFC 7009) and change notifications for every replica's caches.

Revision ID: 0003
Revises: 0002

PostgreSQL triggers NOTIFY on every change that can make a token inactive, so replicas may cache
introspection state while they LISTEN (src/leerid_gateway/tokens/live.py). Foreign-key cascades
fire the session trigger too, so a merged-away or deleted identity's sessions are announced.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FUNCTIONS = """
CREATE FUNCTION leerid_notify_session() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM pg_notify('leerid_sessions', OLD.id);
    RETURN OLD;
  END IF;
  PERFORM pg_notify('leerid_sessions', NEW.id);
  RETURN NEW;
END $$;

CREATE FUNCTION leerid_notify_token() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('leerid_tokens', NEW.jti);
  RETURN NEW;
END $$;

CREATE FUNCTION leerid_notify_client() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM pg_notify('leerid_clients', OLD.client_id);
    RETURN OLD;
  END IF;
  PERFORM pg_notify('leerid_clients', NEW.client_id);
  RETURN NEW;
END $$;

CREATE TRIGGER sessions_notify AFTER UPDATE OF revoked_at OR DELETE ON sessions
  FOR EACH ROW EXECUTE FUNCTION leerid_notify_session();

CREATE TRIGGER revoked_tokens_notify AFTER INSERT ON revoked_tokens
  FOR EACH ROW EXECUTE FUNCTION leerid_notify_token();

CREATE TRIGGER internal_clients_notify AFTER UPDATE OR DELETE ON internal_clients
  FOR EACH ROW EXECUTE FUNCTION leerid_notify_client();
"""


def upgrade() -> None:
    op.create_table(
        "revoked_tokens",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_revoked_tokens")),
    )
    op.create_index(op.f("ix_revoked_tokens_expires_at"), "revoked_tokens", ["expires_at"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # One statement per call: asyncpg prepares each and refuses several in one.
        for statement in _FUNCTIONS.split("\n\n"):
            op.execute(statement.strip())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS sessions_notify ON sessions")
        op.execute("DROP TRIGGER IF EXISTS revoked_tokens_notify ON revoked_tokens")
        op.execute("DROP TRIGGER IF EXISTS internal_clients_notify ON internal_clients")
        op.execute(
            "DROP FUNCTION IF EXISTS leerid_notify_session(), leerid_notify_token(), leerid_notify_client()"
        )
    op.drop_index(op.f("ix_revoked_tokens_expires_at"), table_name="revoked_tokens")
    op.drop_table("revoked_tokens")
