"""Settings refuse to run unsafe: validated once at start-up, one readable line for the operator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from leerid_gateway.settings import (
    DEFAULT_ATTRIBUTE_MAPPING,
    ClientAuthMethod,
    Settings,
    SettingsError,
    load_settings,
)

CLI = str(Path(sys.executable).with_name("leerid-gateway"))

REQUIRED = {
    "LEERID_OIDC_ISSUER": "https://authenticatie-ti.vlaanderen.be/op",
    "LEERID_OIDC_CLIENT_ID": "eteacher",
    "LEERID_OIDC_CLIENT_SECRET": "a-real-looking-client-secret",
    "LEERID_ALLOWED_RETURN_URLS": "https://eteacher.example/app/",
    "LEERID_SECRET_KEY": "0123456789abcdefghijklmnopqrstuvwxyz",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A clean LEERID_ environment holding only the required settings."""
    for name in list(os.environ):
        if name.startswith("LEERID_"):
            monkeypatch.delenv(name)
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def refusal(**overrides: object) -> str:
    with pytest.raises(SettingsError) as caught:
        load_settings(**overrides)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("invalid configuration: ")
    return message


def test_required_environment_is_enough(env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.environment == "production"
    assert settings.provider_issuer == "https://authenticatie-ti.vlaanderen.be/op"
    assert settings.oidc_client_auth is ClientAuthMethod.CLIENT_SECRET_BASIC
    assert settings.oidc_id_token_algs == ["RS256"]
    assert settings.attribute_mapping == DEFAULT_ATTRIBUTE_MAPPING


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_missing_required_setting_is_named_in_one_line(env: pytest.MonkeyPatch, missing: str) -> None:
    env.delenv(missing)
    assert missing in refusal()


def test_everything_missing_is_still_one_line_naming_each(env: pytest.MonkeyPatch) -> None:
    for name in REQUIRED:
        env.delenv(name)
    message = refusal()
    for name in (
        "LEERID_OIDC_ISSUER",
        "LEERID_OIDC_CLIENT_ID",
        "LEERID_ALLOWED_RETURN_URLS",
        "LEERID_SECRET_KEY",
    ):
        assert name in message


def test_comma_separated_lists_parse_from_the_environment(env: pytest.MonkeyPatch) -> None:
    env.setenv("LEERID_ALLOWED_RETURN_URLS", " https://eteacher.example/app/ ,https://other.example/x,, ")
    env.setenv("LEERID_OIDC_ID_TOKEN_ALGS", "RS256, ES256,PS256")
    env.setenv("LEERID_CORS_ORIGINS", "https://eteacher.example")
    settings = load_settings()
    assert settings.allowed_return_urls == ["https://eteacher.example/app/", "https://other.example/x"]
    assert settings.oidc_id_token_algs == ["RS256", "ES256", "PS256"]
    assert settings.cors_origins == ["https://eteacher.example"]


def test_cors_origins_default_to_the_return_url_origins(env: pytest.MonkeyPatch) -> None:
    env.setenv(
        "LEERID_ALLOWED_RETURN_URLS",
        "https://ETeacher.example/app/,https://eteacher.example/b,http://x.test:8080/",
    )
    assert load_settings().effective_cors_origins == ["https://eteacher.example", "http://x.test:8080"]


@pytest.mark.parametrize("algs", ["HS256", "RS256,HS256", "none", "RS256,none", "HS512", "", " , "])
def test_symmetric_or_no_id_token_alg_is_refused(env: pytest.MonkeyPatch, algs: str) -> None:
    """OIDC Core §10.1 / RFC 8725 §3.1: no HMAC with a public key, never `none`."""
    env.setenv("LEERID_OIDC_ID_TOKEN_ALGS", algs)
    assert "LEERID_OIDC_ID_TOKEN_ALGS" in refusal()


@pytest.mark.parametrize(
    "url", ["eteacher.example/app", "javascript:alert(1)", "https://u:p@eteacher.example/", "/app"]
)
def test_return_url_prefixes_must_be_absolute_http_urls(env: pytest.MonkeyPatch, url: str) -> None:
    env.setenv("LEERID_ALLOWED_RETURN_URLS", url)
    assert "LEERID_ALLOWED_RETURN_URLS" in refusal()


@pytest.mark.parametrize("secret", ["changeme", "Secret", "demo-secret", "PASSWORD"])
def test_placeholder_client_secret_refused_in_production_allowed_in_development(
    env: pytest.MonkeyPatch, secret: str
) -> None:
    env.setenv("LEERID_OIDC_CLIENT_SECRET", secret)
    assert "LEERID_OIDC_CLIENT_SECRET is a placeholder" in refusal()
    env.setenv("LEERID_ENVIRONMENT", "development")
    assert load_settings().oidc_client_secret is not None


def test_short_secret_key_is_refused_even_in_development(env: pytest.MonkeyPatch) -> None:
    env.setenv("LEERID_SECRET_KEY", "x" * 31)
    env.setenv("LEERID_ENVIRONMENT", "development")
    assert "LEERID_SECRET_KEY must be at least 32 characters" in refusal()
    env.setenv("LEERID_SECRET_KEY", "x" * 32)
    assert load_settings().secret_key.get_secret_value() == "x" * 32


def test_plain_http_public_url_is_refused_in_production_except_loopback(env: pytest.MonkeyPatch) -> None:
    env.setenv("LEERID_PUBLIC_URL", "http://login.eteacher.example")
    assert "LEERID_PUBLIC_URL must be https" in refusal()
    env.setenv("LEERID_PUBLIC_URL", "http://127.0.0.1:8000")
    assert not load_settings().secure_cookies
    env.setenv("LEERID_PUBLIC_URL", "https://login.eteacher.example")
    assert load_settings().redirect_uri == "https://login.eteacher.example/callback"


def test_missing_client_secret_is_refused_for_secret_methods(env: pytest.MonkeyPatch) -> None:
    env.delenv("LEERID_OIDC_CLIENT_SECRET")
    env.setenv("LEERID_OIDC_CLIENT_AUTH", "client_secret_post")
    assert "LEERID_OIDC_CLIENT_SECRET is required for client_secret_post" in refusal()


def test_private_key_jwt_needs_an_existing_key_file(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.delenv("LEERID_OIDC_CLIENT_SECRET")
    env.setenv("LEERID_OIDC_CLIENT_AUTH", "private_key_jwt")
    assert "LEERID_OIDC_PRIVATE_KEY_FILE is required for private_key_jwt" in refusal()
    env.setenv("LEERID_OIDC_PRIVATE_KEY_FILE", str(tmp_path / "absent.pem"))
    assert "is not a file" in refusal()
    (tmp_path / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    env.setenv("LEERID_OIDC_PRIVATE_KEY_FILE", str(tmp_path / "key.pem"))
    assert load_settings().oidc_private_key_file == tmp_path / "key.pem"


def test_attribute_mapping_override_merges_with_the_defaults(env: pytest.MonkeyPatch) -> None:
    env.setenv("LEERID_ATTRIBUTE_MAPPING", '{"account_uuid": "acm_account", "school_code": "instelling"}')
    mapping = load_settings().attribute_mapping
    assert mapping["account_uuid"] == "acm_account"
    assert mapping["school_code"] == "instelling"
    assert mapping["given_name"] == DEFAULT_ATTRIBUTE_MAPPING["given_name"]
    assert set(mapping) == set(DEFAULT_ATTRIBUTE_MAPPING)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ('{"email": "mail"}', "unknown attributes"),
        ("{not json", "must be a JSON object"),
        ('["account_uuid"]', "must be a JSON object"),
    ],
)
def test_attribute_mapping_refuses_unknown_keys_and_non_objects(
    env: pytest.MonkeyPatch, value: str, match: str
) -> None:
    env.setenv("LEERID_ATTRIBUTE_MAPPING", value)
    message = refusal()
    assert "LEERID_ATTRIBUTE_MAPPING" in message
    assert match in message


def test_idle_ttl_cannot_exceed_absolute_ttl(env: pytest.MonkeyPatch) -> None:
    env.setenv("LEERID_SESSION_IDLE_TTL", "7200")
    env.setenv("LEERID_SESSION_ABSOLUTE_TTL", "3600")
    assert "LEERID_SESSION_IDLE_TTL cannot exceed" in refusal()


def test_secrets_do_not_leak_into_the_error_or_repr(env: pytest.MonkeyPatch) -> None:
    env.setenv("LEERID_OIDC_CLIENT_SECRET", "really-secret-value-123")
    env.setenv("LEERID_PUBLIC_URL", "http://login.eteacher.example")
    assert "really-secret-value-123" not in refusal()
    env.setenv("LEERID_PUBLIC_URL", "https://login.eteacher.example")
    assert "really-secret-value-123" not in repr(load_settings())


def test_keyword_construction_splits_lists_like_the_environment(env: pytest.MonkeyPatch) -> None:
    values = {name.removeprefix("LEERID_").lower(): value for name, value in REQUIRED.items()}
    for name in REQUIRED:
        env.delenv(name)
    settings = Settings(**values, oidc_id_token_algs="ES256,EdDSA")  # type: ignore[arg-type]
    assert settings.oidc_id_token_algs == ["ES256", "EdDSA"]


def test_cli_with_an_empty_environment_exits_2_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [CLI, "migrate"],
        env={"PATH": os.environ["PATH"]},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("leerid-gateway: invalid configuration")
    assert "LEERID_OIDC_ISSUER" in lines[0]
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # refused before touching any database
