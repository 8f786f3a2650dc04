"""`leerid-gateway keys list|rotate`: the signing keys of the internal tokens."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from typing import Any

from leerid_gateway.db import create_engine, create_session_factory, unit_of_work, utcnow
from leerid_gateway.kit.crypto import Sealer
from leerid_gateway.settings import Settings
from leerid_gateway.tokens import keys as key_store
from leerid_gateway.tokens.models import SigningKey


def rotation_lead(settings: Settings) -> dt.timedelta:
    """Long enough for every verifier to have fetched the JWKS that lists the next key: the JWKS
    cache lifetime we advertise, plus one key refresh of every replica, plus a margin."""
    return dt.timedelta(seconds=settings.jwks_max_age + 2 * settings.keys_refresh_interval + 5)


async def _run(settings: Settings, action: str, lead_override: float | None) -> int:
    from sqlalchemy import select

    engine = create_engine(settings.database_url, pool_size=2)
    sealer = Sealer(settings.secret_key.get_secret_value(), "signing-keys")
    try:
        async with unit_of_work(create_session_factory(engine)) as db:
            if action == "rotate":
                lead = (
                    dt.timedelta(seconds=lead_override)
                    if lead_override is not None
                    else rotation_lead(settings)
                )
                try:
                    row = await key_store.rotate(db, sealer, settings.token_signing_alg, lead=lead)
                except ValueError as exc:
                    print(f"leerid-gateway: {exc}", file=sys.stderr)
                    return 1
                print(
                    f"new key {row.kid} ({row.alg}) is published now and signs from "
                    f"{row.activated_at:%Y-%m-%d %H:%M:%S} UTC"
                )
                return 0
            rows = list(await db.scalars(select(SigningKey)))
            now = utcnow()
            for status in key_store.statuses(rows, max_token_ttl=settings.access_token_ttl, now=now):
                until = f"{status.published_until:%Y-%m-%d %H:%M:%S}" if status.published_until else "-"
                print(
                    f"{status.kid}\t{status.alg}\t{status.state}"
                    f"\tsigns from {status.activated_at:%Y-%m-%d %H:%M:%S}"
                    f"\tpublished until {until}"
                )
            return 0
    finally:
        await engine.dispose()


def register(sub: Any) -> None:
    keys = sub.add_parser("keys", help="signing keys of the internal tokens")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    keys_sub.add_parser("list", help="every key with its state (next, active, retired, expired)")
    rotate = keys_sub.add_parser(
        "rotate", help="publish a new key now; it signs once every verifier knows it"
    )
    rotate.add_argument("--lead", type=float, default=None, help=argparse.SUPPRESS)  # tests only

    def run(args: argparse.Namespace) -> int:
        from leerid_gateway.cli import _settings

        return asyncio.run(_run(_settings(), args.action, getattr(args, "lead", None)))

    keys.set_defaults(func=run)
