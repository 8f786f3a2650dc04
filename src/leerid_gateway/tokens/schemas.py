"""Response bodies of the token endpoints (documented in openapi.yaml)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AccessTokenResponse(BaseModel):
    """RFC 6749 §5.1 shape."""

    access_token: str
    token_type: str = "Bearer"  # noqa: S105 (RFC 6749 §7.1 token type)
    expires_in: int


class IntrospectionResponse(BaseModel):
    """RFC 7662 §2.2. An inactive token gets ``{"active": false}`` and nothing else."""

    active: bool
    scope: str | None = None
    client_id: str | None = None
    token_type: str | None = None
    exp: int | None = None
    iat: int | None = None
    sub: str | None = None
    aud: str | None = None
    iss: str | None = None
    jti: str | None = None
    sid: str | None = Field(None, description="The gateway session the token belongs to.")


class OAuthErrorResponse(BaseModel):
    """RFC 6749 §5.2."""

    error: str
    error_description: str | None = None
