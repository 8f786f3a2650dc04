"""Imports every package's tables so that Base.metadata is complete (Alembic, tests)."""

from __future__ import annotations


def load_all() -> None:
    from leerid_gateway.access import models as _access  # noqa: F401
    from leerid_gateway.admin import models as _admin  # noqa: F401
    from leerid_gateway.clients import models as _clients  # noqa: F401
    from leerid_gateway.identity import models as _identity  # noqa: F401
    from leerid_gateway.kit import ratelimit as _ratelimit  # noqa: F401
    from leerid_gateway.oidc import models as _oidc  # noqa: F401
    from leerid_gateway.privacy import models as _privacy  # noqa: F401
    from leerid_gateway.sessions import models as _sessions  # noqa: F401
    from leerid_gateway.tokens import models as _tokens  # noqa: F401
