"""The `leerid-gateway` command: serve, migrate, demo, schools, clients, openapi, settings-reference."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from leerid_gateway.settings import Settings, SettingsError, load_settings


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        print(f"leerid-gateway: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


async def _with_db(settings: Settings, work: Callable[[Any], Awaitable[int]]) -> int:
    from leerid_gateway.db import create_engine, create_session_factory, unit_of_work

    engine = create_engine(settings.database_url, pool_size=2)
    try:
        async with unit_of_work(create_session_factory(engine)) as db:
            return await work(db)
    finally:
        await engine.dispose()


def cmd_serve(args: argparse.Namespace) -> int:
    from leerid_gateway.serving import serve, uvicorn_config

    settings = _settings()
    config = uvicorn_config(
        settings,
        host=args.host,
        port=args.port,
        workers=args.workers,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
    )
    return serve(settings, config)


def cmd_migrate(args: argparse.Namespace) -> int:
    from leerid_gateway.migrate import upgrade

    settings = _settings()
    asyncio.run(upgrade(settings.database_url))
    print("database is at the latest schema")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from leerid_gateway.demo.run import run_demo
    from leerid_gateway.kit.logging import configure_logging

    configure_logging("info")
    return run_demo(host=args.host, port=args.port, data_dir=args.data_dir)


def cmd_schools(args: argparse.Namespace) -> int:
    from leerid_gateway.access import service as access

    settings = _settings()

    async def work(db: Any) -> int:
        if args.action == "add":
            added = await access.add(db, args.code, args.name)
            print(f"partner school {args.code} {'added' if added else 'was already a partner'}")
        elif args.action == "remove":
            if not await access.remove(db, args.code):
                print(f"{args.code} is not a partner school", file=sys.stderr)
                return 1
            print(f"partner school {args.code} removed")
        else:
            for school in await access.list_all(db):
                print(f"{school.code}\t{school.name or ''}\t{school.added_at:%Y-%m-%d}")
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_clients(args: argparse.Namespace) -> int:
    from leerid_gateway.clients import service as clients
    from leerid_gateway.kit.crypto import Hasher

    settings = _settings()
    hasher = Hasher(settings.secret_key.get_secret_value(), "client-secret")

    async def work(db: Any) -> int:
        if args.action == "add":
            new = await clients.add(db, hasher, args.name)
            if args.json:
                print(json.dumps({"client_id": new.client_id, "client_secret": new.client_secret}))
            else:
                print(
                    f"client_id:     {new.client_id}\nclient_secret: {new.client_secret}\n"
                    "(the secret is shown once; only its hash is stored)"
                )
        elif args.action == "revoke":
            if not await clients.revoke(db, args.client):
                print(f"no active client {args.client}", file=sys.stderr)
                return 1
            print(f"client {args.client} revoked")
        else:
            for client in await clients.list_all(db):
                state = "revoked" if client.revoked_at else "active"
                print(f"{client.client_id}\t{client.name}\t{state}\t{client.created_at:%Y-%m-%d}")
        return 0

    try:
        return asyncio.run(_with_db(settings, work))
    except Exception as exc:  # the unique name, most often
        if type(exc).__name__ == "IntegrityError":
            print(f"a client named {args.name!r} exists already", file=sys.stderr)
            return 1
        raise


def cmd_settings_reference(args: argparse.Namespace) -> int:
    from leerid_gateway.settings_reference import render_markdown

    sys.stdout.write(render_markdown())
    return 0


def cmd_openapi(args: argparse.Namespace) -> int:
    from leerid_gateway.openapi import render_yaml

    sys.stdout.write(render_yaml())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leerid-gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway (uvloop + httptools)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--proxy-headers", action="store_true", help="trust X-Forwarded-* from --forwarded-allow-ips"
    )
    serve.add_argument(
        "--forwarded-allow-ips", default=None, help="default: LEERID_TRUSTED_PROXIES (127.0.0.1)"
    )
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="bring the database schema up to date (Alembic)")
    migrate.set_defaults(func=cmd_migrate)

    demo = sub.add_parser("demo", help="run the gateway with an embedded stand-in for ACM, on SQLite")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000, help="gateway port; provider +1, eTeacher +2")
    demo.add_argument("--data-dir", default="demo-data")
    demo.set_defaults(func=cmd_demo)

    schools = sub.add_parser("schools", help="partner schools (instellingsnummers)")
    schools_sub = schools.add_subparsers(dest="action", required=True)
    add = schools_sub.add_parser("add")
    add.add_argument("code")
    add.add_argument("--name")
    remove = schools_sub.add_parser("remove")
    remove.add_argument("code")
    schools_sub.add_parser("list")
    schools.set_defaults(func=cmd_schools)

    clients = sub.add_parser("clients", help="internal clients of /introspect")
    clients_sub = clients.add_subparsers(dest="action", required=True)
    cadd = clients_sub.add_parser("add")
    cadd.add_argument("name")
    cadd.add_argument("--json", action="store_true", help='print {"client_id", "client_secret"}')
    crevoke = clients_sub.add_parser("revoke")
    crevoke.add_argument("client", help="client_id or name")
    clients_sub.add_parser("list")
    clients.set_defaults(func=cmd_clients)
    openapi = sub.add_parser("openapi", help="print the OpenAPI document as YAML (openapi.yaml)")
    openapi.set_defaults(func=cmd_openapi)
    reference = sub.add_parser(
        "settings-reference", help="print the settings table of docs/operations.md (Markdown)"
    )
    reference.set_defaults(func=cmd_settings_reference)
    from leerid_gateway.tokens import cli as tokens_cli

    tokens_cli.register(sub)
    from leerid_gateway.admin import cli as admin_cli
    from leerid_gateway.privacy import cli as privacy_cli

    admin_cli.register(sub)
    privacy_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
