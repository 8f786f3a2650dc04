"""docs/operations.md's configuration reference is generated from Settings and must stay so; the
operations settings refuse unsafe values (issue 7)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from leerid_gateway.settings import Settings, SettingsError, load_settings
from leerid_gateway.settings_reference import render_markdown, section_of

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ROOT / "docs" / "operations.md"
BASE: dict[str, Any] = {
    "oidc_issuer": "https://acm.example",
    "oidc_client_id": "x",
    "oidc_client_secret": "s" * 20,
    "allowed_return_urls": ["https://eteacher.example/"],
    "secret_key": "k" * 40,
}


def test_the_reference_in_operations_md_is_the_generated_one() -> None:
    assert section_of(OPERATIONS.read_text(encoding="utf-8")) == render_markdown(), (
        "docs/operations.md is stale: replace its settings-reference section with the output of "
        "`leerid-gateway settings-reference`"
    )


def test_the_reference_names_every_setting_with_its_variable() -> None:
    table = render_markdown()
    for name in Settings.model_fields:
        variable = name.upper() if name.startswith("otel_") else f"LEERID_{name.upper()}"
        assert f"| `{variable}` |" in table, variable
    assert "| `LEERID_SECRET_KEY` | **required** |" in table
    assert "| `LEERID_TRUSTED_PROXIES` | `127.0.0.1` |" in table


def test_the_cli_prints_the_same_reference() -> None:
    cli = Path(sys.executable).with_name("leerid-gateway")
    result = subprocess.run([str(cli), "settings-reference"], capture_output=True, text=True, env={})
    assert result.returncode == 0, result.stderr
    assert result.stdout == render_markdown()


def test_metrics_in_production_need_a_long_enough_token() -> None:
    with pytest.raises(SettingsError, match="LEERID_METRICS_TOKEN"):
        load_settings(**BASE, metrics_enabled=True)
    with pytest.raises(SettingsError, match="at least 16"):
        load_settings(**BASE, metrics_enabled=True, metrics_token="short")
    assert load_settings(**BASE, environment="development", metrics_enabled=True).metrics_token is None
    with pytest.raises(SettingsError, match="OTEL_TRACES_EXPORTER"):
        load_settings(**BASE, otel_traces_exporter="zipkin")
