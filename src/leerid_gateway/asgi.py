"""ASGI entry point for uvicorn: `uvicorn --factory leerid_gateway.asgi:app_from_environment`."""

from __future__ import annotations

import sys

from fastapi import FastAPI

from leerid_gateway.app import create_app
from leerid_gateway.kit.logging import configure_logging
from leerid_gateway.settings import SettingsError, load_settings


def app_from_environment() -> FastAPI:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"leerid-gateway: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level)  # here, so that every uvicorn worker process logs JSON
    return create_app(settings)
