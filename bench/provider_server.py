"""The stand-in ACM provider as its own uvicorn process (so its CPU is never counted as the gateway's).

provider_server.py ISSUER PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI
"""

from __future__ import annotations

import sys

import uvicorn

from leerid_gateway.demo.provider import RegisteredClient, StandInProvider


def main() -> None:
    issuer, port, client_id, secret, redirect_uri = sys.argv[1:6]
    provider = StandInProvider(
        issuer, [RegisteredClient(client_id=client_id, redirect_uris=[redirect_uri], client_secret=secret)]
    )
    uvicorn.run(
        provider.app,
        host="127.0.0.1",
        port=int(port),
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
