"""Issue 3: reconciliation at scale. reconcile() called directly (in-process, asyncpg), each call in
its own transaction rolled back afterwards (table sizes stay fixed), at 10k and at 1M identities
(3 aliases each), plus EXPLAIN (ANALYZE, BUFFERS) of every statement reconcile() runs at 1M.

    .venv/bin/python -m bench.reconcile_bench                 # ~5 minutes (seeding 1M + 3M rows)
    .venv/bin/python -m bench.reconcile_bench --calls 200     # quicker

Rows are generated inside PostgreSQL (INSERT … SELECT generate_series), after `leerid-gateway
migrate`. Pupil g: leer_id_uuid md5('lid'||g) (none when g % 5 = 0: a temporary account),
account aliases md5('acc'||g||'/'||k) for k = 1..3, all three sent in each of its logins.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import statistics
import time
import uuid
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.stand import PARTNER_SCHOOL, Stand, create_database, drop_database, machine, psql
from bench.wrkrun import save_results
from leerid_gateway.db import create_engine, create_session_factory
from leerid_gateway.identity import service as identity_service
from leerid_gateway.leerid.profile import LeerIdProfile

DATABASE = "leerid_bench_reconcile"


def _md5_uuid(text: str) -> str:
    return str(uuid.UUID(hashlib.md5(text.encode()).hexdigest()))


def seed(lo: int, hi: int) -> float:
    """Identities lo..hi (inclusive) with three aliases each; returns seconds taken."""
    t0 = time.perf_counter()
    psql(
        f"""
        SET synchronous_commit = off;
        INSERT INTO identities (id, sub, leer_id_uuid, given_name, family_name, school_code, school_name,
                                created_at, last_login_at)
        SELECT g, md5('sub' || g)::uuid,
               CASE WHEN g % 5 <> 0 THEN md5('lid' || g)::uuid::text END,
               'Voornaam' || g, 'Familienaam', '{PARTNER_SCHOOL}', 'Sint-Jozefscollege (demo)',
               now() - interval '400 days', now() - (g % 5000) * interval '1 hour'
        FROM generate_series({lo}, {hi}) AS g;
        INSERT INTO account_aliases (account_uuid, identity_id, created_at)
        SELECT md5('acc' || g || '/' || k)::uuid::text, g, now() - interval '400 days'
        FROM generate_series({lo}, {hi}) AS g, generate_series(1, 3) AS k;
        SELECT setval(pg_get_serial_sequence('identities', 'id'), (SELECT max(id) FROM identities));
        ANALYZE identities; ANALYZE account_aliases;
        """,
        DATABASE,
    )
    return time.perf_counter() - t0


def returning_pupil(g: int) -> LeerIdProfile:
    return LeerIdProfile(
        account_uuid=_md5_uuid(f"acc{g}/1"),
        leer_id_uuid=None if g % 5 == 0 else _md5_uuid(f"lid{g}"),
        history_account_uuids=(_md5_uuid(f"acc{g}/2"), _md5_uuid(f"acc{g}/3")),
        given_name=f"Voornaam{g}",
        family_name="Familienaam",
        school_codes=(PARTNER_SCHOOL,),
        school_names=("Sint-Jozefscollege (demo)",),
    )


def new_pupil(_g: int) -> LeerIdProfile:
    return LeerIdProfile(
        account_uuid=str(uuid.uuid4()),
        leer_id_uuid=str(uuid.uuid4()),
        history_account_uuids=(str(uuid.uuid4()),),
        given_name="Nieuw",
        family_name="Leerling",
        school_codes=(PARTNER_SCHOOL,),
        school_names=("Sint-Jozefscollege (demo)",),
    )


async def timed_calls(
    factory: async_sessionmaker[AsyncSession], profiles: list[LeerIdProfile]
) -> dict[str, float]:
    times = []
    for profile in profiles:
        async with factory() as db:
            tx = await db.begin()
            t0 = time.perf_counter()
            await identity_service.reconcile(db, profile, school_code=PARTNER_SCHOOL, school_name="x")
            times.append(time.perf_counter() - t0)
            await tx.rollback()
    times.sort()
    return {
        "calls": len(times),
        "median_ms": 1000 * statistics.median(times),
        "p99_ms": 1000 * times[int(0.99 * (len(times) - 1))],
        "max_ms": 1000 * times[-1],
    }


def kinds(size: int, calls: int) -> dict[str, list[LeerIdProfile]]:
    rng = random.Random(size)
    identified = [g for g in (rng.randint(1, size) for _ in range(calls * 2)) if g % 5][:calls]
    temporary = [5 * rng.randint(1, size // 5) for _ in range(calls)]
    return {
        "returning identified pupil": [returning_pupil(g) for g in identified],
        "returning temporary pupil": [returning_pupil(g) for g in temporary],
        "new pupil": [new_pupil(i) for i in range(calls)],
    }


async def explain_all(
    factory: async_sessionmaker[AsyncSession], profile: LeerIdProfile
) -> list[dict[str, str]]:
    """Every statement one reconcile() sends, then EXPLAIN (ANALYZE, BUFFERS) of each read/update."""
    captured: list[tuple[str, Any]] = []
    engine = factory.kw["bind"]

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> None:
        captured.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        async with factory() as db:
            tx = await db.begin()
            await identity_service.reconcile(db, profile, school_code=PARTNER_SCHOOL, school_name="x")
            await tx.rollback()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    plans = []
    async with factory() as db:
        tx = await db.begin()
        conn = await db.connection()
        for statement, parameters in captured:
            verb = statement.lstrip().split()[0].upper()
            plan = ""
            if verb in ("SELECT", "UPDATE", "DELETE") and "pg_advisory_xact_lock" not in statement:
                rows = await conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
                plan = "\n".join(r[0] for r in rows)
            plans.append({"statement": statement, "parameters": repr(parameters), "plan": plan})
        await tx.rollback()
    return plans


async def bench_size(factory: async_sessionmaker[AsyncSession], size: int, calls: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, profiles in kinds(size, calls).items():
        await timed_calls(factory, profiles[:20])  # warm the statement caches
        out[name] = await timed_calls(factory, profiles)
        print(f"  {size:>9,} {name:28} {out[name]}", flush=True)
    return out


async def run(calls: int, small: int, large: int) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine(), "calls": calls, "sizes": {}}
    stand = Stand(DATABASE)  # only for its environment and `leerid-gateway migrate`
    create_database(DATABASE)
    try:
        stand.cli("migrate")
        engine = create_engine(stand.database_url, pool_size=2)
        factory = create_session_factory(engine)
        try:
            results["seed_s_small"] = seed(1, small)
            results["sizes"][small] = await bench_size(factory, small, calls)
            results["seed_s_large"] = seed(small + 1, large)
            psql("VACUUM ANALYZE identities", DATABASE)  # one statement each: VACUUM refuses a transaction
            psql("VACUUM ANALYZE account_aliases", DATABASE)
            results["rows"] = psql(
                "SELECT (SELECT count(*) FROM identities) || ' identities, ' || "
                "(SELECT count(*) FROM account_aliases) || ' aliases'",
                DATABASE,
            )
            results["sizes"][large] = await bench_size(factory, large, calls)
            g = next(g for g in range(large // 2, large) if g % 5)
            results["explain_returning_identified"] = await explain_all(factory, returning_pupil(g))
            results["explain_returning_temporary"] = await explain_all(
                factory, returning_pupil(large // 10 * 5)
            )
            results["explain_new"] = await explain_all(factory, new_pupil(0))

        finally:
            await engine.dispose()
    finally:
        drop_database(DATABASE)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    args = parser.parse_args()
    results = asyncio.run(run(args.calls, args.small, args.large))
    out = save_results("reconcile", results)
    print(
        f"\nseeded: {results.get('rows')}  (seed {results['seed_s_small']:.0f} s + {results['seed_s_large']:.0f} s)"
    )
    for key in ("explain_returning_identified", "explain_returning_temporary", "explain_new"):
        print(f"\n===== {key}")
        for item in results[key]:
            if item["plan"]:
                print("--", " ".join(item["statement"].split())[:400])
                print(item["plan"])
    print(f"\nfull results: {out}")


if __name__ == "__main__":
    main()
