"""The gateway's error hierarchy; ``app.py`` maps each kind to its HTTP shape in one place.

- ``PupilError``: a pupil's browser sees a Dutch HTML page (and return_to may get ``error=``).
- ``OAuthError``: RFC 6749 §5.2 / RFC 7662 JSON errors for OAuth endpoints.
- ``ProblemError``: RFC 9457 problem+json for the other APIs.
"""

from __future__ import annotations

# Paths a pupil's browser opens directly: errors there are Dutch pages, not JSON.
PUPIL_PATHS = ("/login", "/callback")
# OAuth endpoints answer every error in RFC 6749 §5.2 form.
OAUTH_PATHS = ("/introspect", "/revoke")


class GatewayError(Exception):
    """Base of every error we raise on purpose."""


class PupilError(GatewayError):
    """Shown to a pupil as a Dutch page. ``reason`` is a stable code, never personal data."""

    def __init__(
        self,
        reason: str,
        *,
        status: int = 400,
        title: str,
        message: str,
        retry: bool = False,
        return_to: str | None = None,
        oauth_error: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.title = title
        self.message = message
        self.retry = retry
        # When set (and already validated), the browser is sent back there with ?error=oauth_error.
        self.return_to = return_to
        self.oauth_error = oauth_error


class OAuthError(GatewayError):
    """RFC 6749 §5.2 error response."""

    def __init__(
        self,
        error: str,
        description: str | None = None,
        *,
        status: int = 400,
        www_authenticate: str | None = None,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.description = description
        self.status = status
        self.www_authenticate = www_authenticate


class ProblemError(GatewayError):
    """RFC 9457 problem details."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type_: str = "about:blank",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_
        # e.g. WWW-Authenticate on a 401 (RFC 9110 §11.6.1, RFC 6750 §3)
        self.headers = headers or {}


class UpstreamError(GatewayError):
    """ACM or the datastore failed or answered something we cannot trust. ``kind`` is for metrics."""

    def __init__(
        self, kind: str, detail: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        # Set when the upstream answered: lets the caller decide whether a retry is sensible.
        self.status = status
        self.retry_after = retry_after
