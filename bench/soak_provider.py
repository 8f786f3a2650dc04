"""The stand-in ACM for the soak test: many synthetic pupils, and faults injected part of the time.

    soak_provider.py ISSUER PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI PUPILS SEED

Pupil ``p{i}`` has a temporary account; ``p{i}-id`` is the same pupil identified, with the temporary
account in its history; every tenth pupil is at a school that is no partner; every 25th identified
pupil also lists the temporary account of its neighbour (a data-quality conflict DOV must hear of).
Faults (seeded, so a run can be repeated): /userinfo 503 (5 %), slow /userinfo 1.5 s (2 %),
/token 500 (2 %, never retried by the gateway), /userinfo answers that are not JSON (1 %).
"""

from __future__ import annotations

import asyncio
import random
import sys
import uuid
from typing import Any

import uvicorn

from leerid_gateway.demo.provider import DemoPupil, RegisteredClient, StandInProvider


def account(i: int, kind: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"soak/{kind}/{i}"))


def pupils(count: int) -> list[DemoPupil]:
    out = []
    for i in range(count):
        school = "099999" if i % 10 == 9 else "012345"
        base = {
            "given_name": f"Leerling{i}",
            "family_name": "Soak",
            "ov_orgcode": school,
            "ov_orgnaam": "School",
        }
        out.append(DemoPupil(f"p{i}", f"p{i}", f"sub-t-{i}", {**base, "ov_account_uuid": account(i, "temp")}))
        history = [account(i, "temp")]
        if i % 25 == 24:
            history.append(account(i - 1, "temp"))
        out.append(
            DemoPupil(
                f"p{i}-id",
                f"p{i}-id",
                f"sub-i-{i}",
                {
                    **base,
                    "ov_account_uuid": account(i, "ident"),
                    "ov_leerid_uuid": [account(i, "leerid")],
                    "ov_historiek_account_uuid": history,
                },
            )
        )
    return out


class FaultyProvider:
    def __init__(self, app: Any, seed: int) -> None:
        self.app = app
        self.random = random.Random(seed)

    async def _reply(self, send: Any, status: int, body: bytes, content_type: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            roll = self.random.random()
            if scope["path"] == "/userinfo":
                if roll < 0.05:
                    return await self._reply(send, 503, b"busy", b"text/plain")
                if roll < 0.07:
                    await asyncio.sleep(1.5)
                elif roll < 0.08:
                    return await self._reply(send, 200, b"<html>maintenance</html>", b"text/html")
            elif scope["path"] == "/token" and roll < 0.02:
                return await self._reply(send, 500, b"oops", b"text/plain")
        await self.app(scope, receive, send)


def main() -> None:
    issuer, port, client_id, secret, redirect_uri, count, seed = sys.argv[1:8]
    provider = StandInProvider(
        issuer,
        [RegisteredClient(client_id=client_id, redirect_uris=[redirect_uri], client_secret=secret)],
        pupils(int(count)),
    )
    uvicorn.run(
        FaultyProvider(provider.app, int(seed)),
        host="127.0.0.1",
        port=int(port),
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
