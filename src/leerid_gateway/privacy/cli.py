"""`leerid-gateway purge [--dry-run]` (protocol art. 3, 11) and `leerid-gateway privacy-log verify`
(protocol art. 6)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from leerid_gateway.db import create_engine, create_session_factory
from leerid_gateway.privacy import retention
from leerid_gateway.privacy import service as privacy
from leerid_gateway.settings import Settings


async def _purge(settings: Settings, args: argparse.Namespace) -> int:
    engine = create_engine(settings.database_url, pool_size=2)
    try:
        report = await retention.purge(
            create_session_factory(engine),
            retention.RetentionPolicy.from_settings(settings),
            batch_size=args.batch_size or settings.purge_batch_size,
            max_batches=args.max_batches,
            dry_run=args.dry_run,
        )
    finally:
        await engine.dispose()
    verb = "would remove" if report.dry_run else "removed"
    print(
        f"{verb}: {report.identities} identities, {report.sessions} sessions, "
        f"{report.login_transactions} login transactions, {report.revoked_tokens} revoked tokens, "
        f"{report.privacy_log} privacy-log entries"
    )
    if report.skipped_identities:
        print(
            f"skipped {report.skipped_identities} identities being changed by a login "
            "(the next run takes them)"
        )
    if not report.complete:
        print("stopped after --max-batches; run again to finish", file=sys.stderr)
    return 0


async def _verify(settings: Settings) -> int:
    engine = create_engine(settings.database_url, pool_size=2)
    try:
        async with create_session_factory(engine)() as db:
            verdict = await privacy.verify(db)
    finally:
        await engine.dispose()
    if not verdict.ok:
        print(f"privacy log BROKEN at entry {verdict.broken_id}: it {verdict.reason}", file=sys.stderr)
        print(f"{verdict.checked} entries before it are intact", file=sys.stderr)
        return 1
    print(f"privacy log intact: {verdict.checked} entries; head #{verdict.head_id} {verdict.head_hash}")
    print("(note the head somewhere the database cannot change it: it protects the newest entries)")
    return 0


def register(sub: Any) -> None:
    purge = sub.add_parser("purge", help="delete what is past its retention period (protocol art. 3)")
    purge.add_argument("--dry-run", action="store_true", help="only count what would be removed")
    purge.add_argument("--batch-size", type=int, default=None, help="rows per transaction")
    purge.add_argument("--max-batches", type=int, default=None, help="stop after this many transactions")

    def run_purge(args: argparse.Namespace) -> int:
        from leerid_gateway.cli import _settings

        return asyncio.run(_purge(_settings(), args))

    purge.set_defaults(func=run_purge)

    log = sub.add_parser("privacy-log", help="the privacy log (protocol art. 6)")
    log_sub = log.add_subparsers(dest="action", required=True)
    log_sub.add_parser("verify", help="check the hash chain; exit 1 naming the first broken entry")

    def run_log(args: argparse.Namespace) -> int:
        from leerid_gateway.cli import _settings

        return asyncio.run(_verify(_settings()))

    log.set_defaults(func=run_log)
