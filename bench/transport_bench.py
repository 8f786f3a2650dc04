"""CPU per upstream call: httpx's default transport (httpcore + h11 + anyio) vs Http1Transport.

    .venv/bin/python -m bench.transport_bench            # from the repository root, ~30 s

A server in its own process answers every request on loopback with a fixed 330-byte JSON document
(keep-alive, Content-Length), so only the client's CPU is measured (``time.process_time`` of this
process). Each client makes the gateway's real call, ``request_json`` (deadline, size bound,
metrics), with a userinfo-like GET; the two are measured in interleaved rounds (this machine's
speed drifts) and the medians reported.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

import httpx
import uvloop

from bench.stand import free_port
from leerid_gateway.oidc.transport import Http1Transport
from leerid_gateway.oidc.upstream import request_json

SERVER = r"""
import asyncio, sys, uvloop
BODY = b'{"sub":"3f1c","given_name":"Lotte","family_name":"Peeters","ov_account_uuid":"5b2e8a61-0f1e-4c7a-9f0b-6a3f1d2c9e88","ov_leerid_uuid":["9d7c6b5a-4e3f-2a1b-0c9d-8e7f6a5b4c3d"],"ov_orgcode":["012345"],"ov_orgnaam":["Sint-Jozefscollege"],"ov_historiek_account_uuid":[]}'
RESP = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(BODY) + BODY
class P(asyncio.Protocol):
    def connection_made(self, t): self.t, self.buf = t, b""
    def data_received(self, d):
        self.buf += d
        while b"\r\n\r\n" in self.buf:
            _, _, self.buf = self.buf.partition(b"\r\n\r\n")
            self.t.write(RESP)
async def main():
    server = await asyncio.get_running_loop().create_server(P, "127.0.0.1", int(sys.argv[1]))
    print("ready", flush=True)
    await server.serve_forever()
uvloop.run(main())
"""

CALLS = 3000
ROUNDS = 5


async def _cpu_per_call(client: httpx.AsyncClient, url: str) -> float:
    headers = {"Authorization": "Bearer 2YotnFZFEjr1zCsicMWpAA", "Accept": "application/json"}
    for _ in range(100):  # warm: connection open, caches filled
        await request_json(client, "datastore", "GET", url, headers=headers)
    start = time.process_time()
    for _ in range(CALLS):
        await request_json(client, "datastore", "GET", url, headers=headers)
    return (time.process_time() - start) / CALLS


async def main() -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        url = f"http://127.0.0.1:{port}/userinfo"
        clients = {
            "httpx default transport": httpx.AsyncClient(timeout=5),
            "Http1Transport": httpx.AsyncClient(timeout=5, transport=Http1Transport()),
        }
        seen: dict[str, list[float]] = {name: [] for name in clients}
        for _ in range(ROUNDS):
            for name, client in clients.items():
                seen[name].append(await _cpu_per_call(client, url))
        for client in clients.values():
            await client.aclose()
    finally:
        server.terminate()
        server.wait()
    results = {name: 1e6 * statistics.median(values) for name, values in seen.items()}
    for name, values in seen.items():
        print(
            f"{name:>24}: {results[name]:6.0f} µs CPU per call (rounds: {[round(1e6 * v) for v in values]})"
        )
    print(json.dumps({"us_cpu_per_call": results, "calls_per_round": CALLS, "rounds": ROUNDS}))


if __name__ == "__main__":
    uvloop.run(main())
