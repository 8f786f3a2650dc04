"""The privacy log is append-only and tamper-evident (protocol art. 6: "een logsysteem en logbeheer
van de privacylogs"): a hash chain that `privacy-log verify` walks."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from leerid_gateway.db import create_session_factory, unit_of_work, utcnow
from leerid_gateway.privacy import retention
from leerid_gateway.privacy import service as privacy
from leerid_gateway.privacy.chain import GENESIS
from leerid_gateway.privacy.models import PrivacyLogEntry
from tests.privacy.factories import POLICY, tamper
from tests.test_cli import run_cli


async def write_entries(engine: AsyncEngine, n: int, *, per_transaction: int = 1) -> list[int]:
    factory = create_session_factory(engine)
    ids = []
    for _ in range(0, n, per_transaction):
        async with unit_of_work(factory) as db:
            for _ in range(per_transaction):
                entry = await privacy.record(
                    db,
                    actor="staff:an.peeters",
                    action=privacy.IDENTITY_LOOKED_UP,
                    purpose="vraag van de school over toegang",
                    sub=uuid.uuid4(),
                    fields=["given_name"],
                    request_id="req-1",
                )
                ids.append(entry.id)
    return ids


async def verdict(engine: AsyncEngine) -> privacy.Verdict:
    async with create_session_factory(engine)() as db:
        return await privacy.verify(db)


async def test_each_entry_is_chained_to_the_one_before(db: AsyncEngine) -> None:
    await write_entries(db, 3)
    await write_entries(db, 4, per_transaction=2)  # several entries in one transaction

    async with db.connect() as conn:
        rows = (await conn.execute(select(PrivacyLogEntry.__table__).order_by(PrivacyLogEntry.id))).all()
    assert len(rows) == 7
    assert rows[0].prev_hash == GENESIS
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(rows))
    result = await verdict(db)
    assert result.ok
    assert result.checked == 7
    assert (result.head_id, result.head_hash) == (rows[-1].id, rows[-1].hash)


async def test_the_database_refuses_to_update_an_entry(db: AsyncEngine) -> None:
    await write_entries(db, 1)
    with pytest.raises(DBAPIError, match="append-only"):
        async with db.begin() as conn:
            await conn.execute(text("UPDATE privacy_log SET purpose = 'iets anders dan de waarheid'"))


async def test_an_altered_entry_is_detected_and_named(db: AsyncEngine, database_url: str) -> None:
    ids = await write_entries(db, 4)
    await tamper(db, "UPDATE privacy_log SET actor = 'system' WHERE id = :id", {"id": ids[2]})

    result = await verdict(db)
    assert not result.ok
    assert result.broken_id == ids[2]
    assert result.reason == "was altered"
    assert result.checked == 2
    cli = run_cli(database_url, "privacy-log", "verify")
    assert cli.returncode == 1
    assert f"BROKEN at entry {ids[2]}" in cli.stderr


async def test_a_removed_entry_is_detected(db: AsyncEngine) -> None:
    ids = await write_entries(db, 4)
    async with db.begin() as conn:
        await conn.execute(text("DELETE FROM privacy_log WHERE id = :id"), {"id": ids[1]})

    result = await verdict(db)
    assert (result.ok, result.broken_id) == (False, ids[2])
    assert "removed or inserted" in str(result.reason)


async def test_an_intact_log_verifies_from_the_cli(db: AsyncEngine, database_url: str) -> None:
    ids = await write_entries(db, 2)
    cli = run_cli(database_url, "privacy-log", "verify")
    assert cli.returncode == 0, cli.stderr
    assert f"intact: 2 entries; head #{ids[-1]}" in cli.stdout


async def test_pruning_old_entries_keeps_the_chain_verifiable(db: AsyncEngine) -> None:
    """The log's own retention (LEERID_PRIVACY_LOG_RETENTION_DAYS) removes the oldest entries and
    records a `privacy_log.pruned` entry holding the anchor the oldest remaining entry continues from."""
    ids = await write_entries(db, 5)
    later = utcnow() + POLICY.privacy_log_retention + dt.timedelta(days=1)

    report = await retention.purge(create_session_factory(db), POLICY, batch_size=2, now=later)

    assert report.privacy_log == 4  # never the newest: the chain goes on from it
    async with db.connect() as conn:
        rows = (await conn.execute(select(PrivacyLogEntry.__table__).order_by(PrivacyLogEntry.id))).all()
    assert rows[0].id == ids[-1]
    pruned = [r for r in rows if r.action == privacy.PRIVACY_LOG_PRUNED]
    assert [p.data["removed"] for p in pruned] == [2, 2]
    assert pruned[-1].data["anchor"] == rows[0].prev_hash
    assert (await verdict(db)).ok

    # Removing the oldest remaining entries by hand is noticed: they no longer meet the anchor.
    async with db.begin() as conn:
        await conn.execute(text("DELETE FROM privacy_log WHERE id = :id"), {"id": rows[0].id})
    result = await verdict(db)
    assert (result.ok, result.broken_id) == (False, rows[1].id)
    assert "anchor" in str(result.reason)


async def test_a_forged_genesis_is_detected_when_nothing_was_pruned(db: AsyncEngine) -> None:
    """Without a pruning entry the chain must start at GENESIS: cutting off the oldest is seen."""
    ids = await write_entries(db, 3)
    async with db.begin() as conn:
        await conn.execute(text("DELETE FROM privacy_log WHERE id = :id"), {"id": ids[0]})
    result = await verdict(db)
    assert (result.ok, result.broken_id) == (False, ids[1])


async def _record_one(factory: object, hold: float = 0.0) -> int:
    import asyncio

    async with unit_of_work(factory) as db:  # type: ignore[arg-type]
        entry = await privacy.record(
            db, actor="system", action=privacy.LOGIN_RECEIVED, purpose="authenticatie", sub=uuid.uuid4()
        )
        await asyncio.sleep(hold)  # still holding the journal lock, entry not yet committed
    return entry.id


async def test_writers_that_wait_for_each_other_still_form_one_chain(pg: AsyncEngine) -> None:
    """The second writer asks for the head while the first holds the journal lock with an entry not
    yet committed: it must wait, then chain to that entry (migration 0008: the head is read with a
    snapshot taken after the lock was granted, not when the statement started)."""
    import asyncio

    factory = create_session_factory(pg)
    first = asyncio.create_task(_record_one(factory, hold=0.5))
    await asyncio.sleep(0.1)
    others = await asyncio.gather(*(_record_one(factory) for _ in range(5)))
    await first

    async with pg.connect() as conn:
        rows = (await conn.execute(select(PrivacyLogEntry.__table__).order_by(PrivacyLogEntry.id))).all()
    assert len(rows) == 6 and rows[0].id == await first and sorted(others) == [r.id for r in rows[1:]]
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(rows))
    assert (await verdict(pg)).ok


async def test_the_head_is_refused_outside_read_committed(pg: AsyncEngine) -> None:
    """Under REPEATABLE READ the head read after the lock could be stale: the function refuses."""
    factory = create_session_factory(pg.execution_options(isolation_level="REPEATABLE READ"))
    with pytest.raises(DBAPIError, match="READ COMMITTED"):
        await _record_one(factory)
