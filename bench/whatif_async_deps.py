"""What-if (bench only, src/ untouched): `leerid-gateway serve` with the request dependencies
``get_gateway``, ``get_settings`` and ``get_request_id`` declared ``async def`` instead of ``def``.

FastAPI runs a plain ``def`` dependency in the thread pool (anyio.to_thread), one thread hop per
dependency per request; an ``async def`` one runs inline on the event loop. The functions do no
I/O, so the change is behaviour-neutral. Used by ``bench.http_bench --whatif``.

    python -m bench.whatif_async_deps serve --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import sys
import typing
from collections.abc import Callable

from fastapi import Request

from leerid_gateway import deps


def _inline(sync: Callable[[Request], typing.Any]) -> Callable[[Request], typing.Any]:
    async def inline(request: Request) -> typing.Any:
        return sync(request)

    return inline


def _patch() -> None:
    sync_to_async = {
        deps.get_gateway: _inline(deps.get_gateway),
        deps.get_settings: _inline(deps.get_settings),
        deps.get_request_id: _inline(deps.get_request_id),
    }
    for alias in (deps.GatewayDep, deps.SettingsDep, deps.RequestId):
        for marker in typing.get_args(alias)[1:]:
            if getattr(marker, "dependency", None) in sync_to_async:
                object.__setattr__(marker, "dependency", sync_to_async[marker.dependency])


if __name__ == "__main__":
    _patch()
    from leerid_gateway.cli import main

    sys.exit(main(sys.argv[1:]))
