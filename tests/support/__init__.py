"""Shared test support: servers, processes, databases, browsers, faults."""

from __future__ import annotations

from typing import Any

from leerid_gateway.settings import Settings


def offline_settings(**overrides: Any) -> Settings:
    """The least a gateway's settings need, for a test that builds the app but calls no provider."""
    values: dict[str, Any] = {
        "oidc_issuer": "https://acm.example",
        "oidc_client_id": "x",
        "oidc_client_secret": "s" * 20,
        "allowed_return_urls": ["https://eteacher.example/"],
        "secret_key": "k" * 40,
    }
    return Settings(**(values | overrides))
