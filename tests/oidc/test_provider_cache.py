"""ACM's discovery document and JWKS: checked (OpenID Connect Discovery 1.0 §3, §4.3) and cached."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx

from leerid_gateway.kit.errors import UpstreamError
from leerid_gateway.oidc import provider as provider_module
from leerid_gateway.oidc.provider import Provider, ProviderMetadata
from leerid_gateway.oidc.resilience import Upstream
from tests.oidc import DISCOVERY_URL, ISSUER, JWKS_URL, Clock, FakeAcm, discovery_document, rsa_key

TTL = 3600


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(provider_module, "time", fake)
    return fake


@pytest.fixture
def acm() -> Iterator[FakeAcm]:
    with respx.mock(assert_all_called=False) as router:
        yield FakeAcm(router, published=[rsa_key()])


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def make_provider(http: httpx.AsyncClient, issuer: str = ISSUER) -> Provider:
    return Provider(Upstream(http, retries=0), issuer, discovery_ttl=TTL, min_refresh=30)


async def test_discovery_is_parsed(acm: FakeAcm, http: httpx.AsyncClient) -> None:
    metadata = await make_provider(http).metadata()
    assert metadata.issuer == ISSUER
    assert metadata.token_endpoint == ISSUER + "/token"
    assert metadata.jwks_uri == JWKS_URL
    assert metadata.response_modes_supported == ("query", "form_post")
    assert metadata.iss_parameter_supported is True
    assert metadata.end_session_endpoint is None


@pytest.mark.parametrize(
    "issuer", ["https://evil.example/op", ISSUER + "/", "https://ACM.example/op", "", None, ISSUER + "/other"]
)
async def test_issuer_mismatch_is_refused(acm: FakeAcm, http: httpx.AsyncClient, issuer: str | None) -> None:
    """Discovery §4.3: the issuer in the document MUST be identical to the configured one."""
    acm.discovery = discovery_document(issuer=ISSUER) | {"issuer": issuer}
    with pytest.raises(UpstreamError, match="issuer") as caught:
        await make_provider(http).metadata()
    assert caught.value.kind == "discovery"


@pytest.mark.parametrize(
    "endpoint",
    ["authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint", "end_session_endpoint"],
)
async def test_http_endpoints_are_refused_when_the_issuer_is_https(
    acm: FakeAcm, http: httpx.AsyncClient, endpoint: str
) -> None:
    acm.discovery = discovery_document(**{endpoint: "http://acm.example/op/endpoint"})
    with pytest.raises(UpstreamError, match=f"{endpoint} is not https"):
        await make_provider(http).metadata()


def test_http_endpoints_are_fine_for_an_http_issuer_in_development() -> None:
    issuer = "http://127.0.0.1:8001"
    doc = discovery_document(issuer=issuer, jwks_uri=issuer + "/jwks")
    assert ProviderMetadata.parse(doc, issuer, require_https=False).jwks_uri == issuer + "/jwks"


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (None, "missing"),
        (42, "not a string"),
        ("/relative/token", "absolute"),
        ("javascript:alert(1)", "absolute"),
        ("https:///no-host", "absolute"),
    ],
)
def test_required_endpoints_must_be_absolute_urls(value: object, match: str) -> None:
    doc = discovery_document() | {"token_endpoint": value}
    with pytest.raises(UpstreamError, match=match):
        ProviderMetadata.parse(doc, ISSUER, require_https=True)


def test_odd_response_modes_are_ignored_and_iss_parameter_must_be_literally_true() -> None:
    doc = discovery_document(response_modes_supported=["query", 7, None, "form_post"]) | {
        "authorization_response_iss_parameter_supported": "true"
    }
    metadata = ProviderMetadata.parse(doc, ISSUER, require_https=True)
    assert metadata.response_modes_supported == ("query", "form_post")
    assert metadata.iss_parameter_supported is False


async def test_discovery_is_cached_within_the_ttl(
    acm: FakeAcm, http: httpx.AsyncClient, clock: Clock
) -> None:
    provider = make_provider(http)
    first = await provider.metadata()
    clock.advance(TTL - 1)
    assert await provider.metadata() is first
    assert acm.discovery_route.call_count == 1
    assert provider.last_success is not None


async def test_concurrent_first_calls_fetch_discovery_once(acm: FakeAcm, http: httpx.AsyncClient) -> None:
    provider = make_provider(http)
    results = await asyncio.gather(*(provider.metadata() for _ in range(10)))
    assert all(r is results[0] for r in results)
    assert acm.discovery_route.call_count == 1


async def test_discovery_is_refetched_after_the_ttl(
    acm: FakeAcm, http: httpx.AsyncClient, clock: Clock
) -> None:
    provider = make_provider(http)
    await provider.metadata()
    acm.discovery = discovery_document(token_endpoint=ISSUER + "/token2")
    clock.advance(TTL)
    assert (await provider.metadata()).token_endpoint == ISSUER + "/token2"
    assert acm.discovery_route.call_count == 2


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(503, text="down"),
        httpx.Response(200, json=discovery_document(issuer="https://evil.example/op")),
        httpx.ConnectError("refused"),
    ],
)
async def test_stale_discovery_is_served_when_the_refetch_fails(
    acm: FakeAcm, http: httpx.AsyncClient, clock: Clock, failure: httpx.Response | Exception
) -> None:
    provider = make_provider(http)
    first = await provider.metadata()
    clock.advance(TTL + 1)
    acm.discovery_route.mock(side_effect=[failure])
    assert await provider.metadata() is first
    assert acm.discovery_route.call_count == 2


async def test_first_discovery_failure_is_raised(acm: FakeAcm, http: httpx.AsyncClient) -> None:
    acm.discovery_route.mock(return_value=httpx.Response(503))
    with pytest.raises(UpstreamError) as caught:
        await make_provider(http).metadata()
    assert caught.value.kind == "discovery"


async def test_discovery_url_is_built_from_the_issuer(acm: FakeAcm, http: httpx.AsyncClient) -> None:
    """Discovery §4.1: issuer + "/.well-known/openid-configuration"."""
    await make_provider(http).metadata()
    assert str(acm.discovery_route.calls.last.request.url) == DISCOVERY_URL


@pytest.mark.parametrize(
    "body",
    [{"keys": "nope"}, {"no_keys": []}, {"keys": [{"kty": "RSA", "n": "AQAB"}]}, {"keys": [{"kty": "XX"}]}],
)
async def test_unparseable_jwks_is_an_upstream_error(
    acm: FakeAcm, http: httpx.AsyncClient, body: dict[str, object]
) -> None:
    acm.jwks_route.mock(return_value=httpx.Response(200, json=body))
    with pytest.raises(UpstreamError) as caught:
        await make_provider(http).signing_keys(None)
    assert caught.value.kind == "jwks"


async def test_jwks_is_fetched_once_for_known_kids(acm: FakeAcm, http: httpx.AsyncClient) -> None:
    provider = make_provider(http)
    kid = acm.published[0].kid
    for _ in range(5):
        keys = await provider.signing_keys(kid)
        assert [k.kid for k in keys.keys] == [kid]
    await provider.signing_keys(None)
    assert acm.jwks_route.call_count == 1
