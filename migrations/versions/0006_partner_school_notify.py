"""Partner-school changes announced to every replica (PostgreSQL NOTIFY).

Revision ID: 0006
Revises: 0005

Every login asks whether one of the pupil's schools is a partner (protocol art. 3). The answer
changes only when staff add or remove a partner school, so a replica may keep the list in memory
for as long as it hears of every change (src/leerid_gateway/access/cache.py): a statement-level
trigger notifies ``leerid_partner_schools`` after any insert, update, delete or truncate, at commit.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FUNCTION = """
CREATE FUNCTION leerid_notify_partner_schools() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('leerid_partner_schools', '');
  RETURN NULL;
END $$
"""
_TRIGGER = """
CREATE TRIGGER partner_schools_notify
AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON partner_schools
FOR EACH STATEMENT EXECUTE FUNCTION leerid_notify_partner_schools()
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTION.strip())
        op.execute(_TRIGGER.strip())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS partner_schools_notify ON partner_schools")
        op.execute("DROP FUNCTION IF EXISTS leerid_notify_partner_schools()")
