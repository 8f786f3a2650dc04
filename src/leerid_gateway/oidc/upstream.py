"""HTTP calls to ACM and the datastore: bounded time, bounded size, JSON only, typed failures.

Nothing here retries: the code exchange is single use (RFC 6749 §4.1.2) and the other calls are
cheap to repeat by the pupil pressing "opnieuw proberen" (issue 6 adds retries where safe).
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from leerid_gateway.kit.errors import UpstreamError

MAX_BODY = 512 * 1024  # far above any real discovery/JWKS/token/userinfo answer


async def request_json(
    client: httpx.AsyncClient,
    kind: str,
    method: str,
    url: str,
    *,
    ok: tuple[int, ...] = (200,),
    **kwargs: Any,
) -> tuple[int, dict[str, Any]]:
    """Send one request and return (status, JSON object). Raises ``UpstreamError(kind…)``.

    Statuses outside ``ok`` still return when the body is a JSON object and the status is 4xx, so the
    caller can read an OAuth error (RFC 6749 §5.2); anything else is an UpstreamError.
    """
    try:
        async with client.stream(method, url, **kwargs) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_BODY:
                    raise UpstreamError(kind, f"response larger than {MAX_BODY} bytes")
    except httpx.TimeoutException:
        raise UpstreamError(kind, "timeout") from None
    except httpx.HTTPError as exc:
        raise UpstreamError(kind, f"transport error ({type(exc).__name__})") from None
    status = response.status_code
    if status >= 500 or (status not in ok and status < 400):
        raise UpstreamError(kind, f"HTTP {status}")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise UpstreamError(kind, f"HTTP {status} with a body that is not JSON") from None
    if not isinstance(data, dict):
        raise UpstreamError(kind, f"HTTP {status} with JSON that is not an object")
    if status not in ok and status < 400:
        raise UpstreamError(kind, f"HTTP {status}")
    return status, data
