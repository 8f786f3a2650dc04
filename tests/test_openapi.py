"""openapi.yaml is what the app serves: regenerate it with `leerid-gateway openapi > openapi.yaml`."""

from __future__ import annotations

from pathlib import Path

import yaml

from leerid_gateway.openapi import document

ROOT = Path(__file__).resolve().parents[1]


def test_openapi_yaml_matches_the_app() -> None:
    committed = yaml.safe_load((ROOT / "openapi.yaml").read_text(encoding="utf-8"))
    assert committed == document(), "openapi.yaml is stale: run `leerid-gateway openapi > openapi.yaml`"


def test_every_promised_endpoint_is_documented() -> None:
    paths = set(document()["paths"])
    assert {
        "/login",
        "/callback",
        "/token",
        "/me",
        "/logout",
        "/introspect",
        "/.well-known/jwks.json",
        "/.well-known/oauth-authorization-server",
        "/healthz",
        "/readyz",
    } <= paths
