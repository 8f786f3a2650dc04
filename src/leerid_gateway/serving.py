"""`leerid-gateway serve`: uvicorn (uvloop + httptools) with a drain period before a graceful stop.

On SIGTERM (Kubernetes, systemd, docker stop) the replica first *drains*: /readyz answers 503 for
``LEERID_SHUTDOWN_DRAIN_SECONDS`` while every request is still served, so the load balancer stops
sending new ones. Then uvicorn closes its socket and gives in-flight requests
``LEERID_SHUTDOWN_TIMEOUT`` seconds to finish before the lifespan closes the pools. A second SIGTERM,
or SIGINT (Ctrl+C), skips the drain.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import uvicorn

from leerid_gateway.kit.lifecycle import DRAINING
from leerid_gateway.kit.logging import configure_logging
from leerid_gateway.settings import Settings

log = logging.getLogger("leerid_gateway.serving")
APP = "leerid_gateway.asgi:app_from_environment"


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain_seconds: float) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self.drain_seconds > 0 and not DRAINING.is_set():
            DRAINING.set()
            log.info("SIGTERM: draining", extra={"drain_seconds": self.drain_seconds})
            timer = threading.Timer(self.drain_seconds, super().handle_exit, args=(sig, None))
            timer.daemon = True
            timer.start()
            return
        super().handle_exit(sig, frame)


def uvicorn_config(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int = 1,
    proxy_headers: bool = False,
    forwarded_allow_ips: str | None = None,
) -> uvicorn.Config:
    return uvicorn.Config(
        APP,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips or ",".join(settings.trusted_proxies),
        server_header=False,
        access_log=False,  # kit/edge.py writes the request line, without the query string
        log_config=None,  # kit/logging.py configures logging, in every worker (asgi.py)
        log_level=settings.log_level,
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )


def serve(settings: Settings, config: uvicorn.Config) -> int:
    configure_logging(settings.log_level)
    if config.workers > 1:
        # uvicorn's supervisor makes plain servers in the workers: no drain period. Prefer one worker
        # per container and more replicas (docs/operations.md).
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return 0
    server = DrainingServer(config, settings.shutdown_drain_seconds)
    server.run()
    return 0 if server.started else 1
