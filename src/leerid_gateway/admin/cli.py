"""`leerid-gateway staff add|list|revoke`: the credentials of staff on /admin (protocol art. 4)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from leerid_gateway.admin import service
from leerid_gateway.admin.models import ROLES
from leerid_gateway.db import create_engine, create_session_factory, unit_of_work
from leerid_gateway.kit.crypto import Hasher
from leerid_gateway.settings import Settings


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    from sqlalchemy.exc import IntegrityError

    engine = create_engine(settings.database_url, pool_size=2)
    hasher = Hasher(settings.secret_key.get_secret_value(), service.HASH_PURPOSE)
    try:
        async with unit_of_work(create_session_factory(engine)) as db:
            if args.action == "add":
                new = await service.add_staff(db, hasher, args.name, args.role)
                if args.json:
                    print(json.dumps({"name": new.name, "role": new.role, "api_key": new.api_key}))
                else:
                    print(
                        f"staff:   {new.name} ({new.role})\napi key: {new.api_key}\n"
                        "(the key is shown once; only its hash is stored)"
                    )
            elif args.action == "revoke":
                if not await service.revoke_staff(db, args.name):
                    print(f"no active staff member {args.name}", file=sys.stderr)
                    return 1
                print(f"staff member {args.name} revoked")
            else:
                for staff in await service.list_staff(db):
                    state = "revoked" if staff.revoked_at else "active"
                    print(f"{staff.name}\t{staff.role}\t{state}\t{staff.created_at:%Y-%m-%d}")
        return 0
    except ValueError as exc:
        print(f"leerid-gateway: {exc}", file=sys.stderr)
        return 2
    except IntegrityError:
        print(f"a staff member named {args.name!r} exists already", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()


def register(sub: Any) -> None:
    staff = sub.add_parser("staff", help="staff credentials for /admin (roles: access-control, auditor)")
    staff_sub = staff.add_subparsers(dest="action", required=True)
    add = staff_sub.add_parser("add", help="make a staff member; prints their API key once")
    add.add_argument("name", help="a handle such as an.peeters (named in the privacy log)")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--json", action="store_true", help="print the key as JSON")
    revoke = staff_sub.add_parser("revoke", help="end a staff member's access")
    revoke.add_argument("name")
    staff_sub.add_parser("list", help="every staff member with role and state")

    def run(args: argparse.Namespace) -> int:
        from leerid_gateway.cli import _settings

        return asyncio.run(_run(_settings(), args))

    staff.set_defaults(func=run)
