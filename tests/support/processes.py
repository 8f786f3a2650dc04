"""Gateway replicas as real OS processes (`leerid-gateway serve`), configured by environment."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from leerid_gateway.settings import Settings
from tests.support.servers import bind_loopback

CLI = str(Path(sys.executable).with_name("leerid-gateway"))


def environment(settings: Settings) -> dict[str, str]:
    """The LEERID_* variables that reproduce ``settings`` in another process."""
    env = {"PATH": os.environ["PATH"]}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, list):
            text = ",".join(str(v) for v in value)
        elif isinstance(value, dict):
            import json

            text = json.dumps(value)
        elif hasattr(value, "get_secret_value"):
            text = value.get_secret_value()
        else:
            text = str(value)
        env[f"LEERID_{name.upper()}"] = text
    return env


class GatewayProcess:
    def __init__(self, settings: Settings, *, port: int | None = None, **extra_env: str) -> None:
        if port is None:
            sock = bind_loopback()
            port = int(sock.getsockname()[1])
            sock.close()
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        # No drain period unless a test asks for one: stop() would otherwise wait for it.
        env = {**environment(settings), "LEERID_SHUTDOWN_DRAIN_SECONDS": "0", **extra_env}
        self.process = subprocess.Popen(
            [CLI, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_ready(self, timeout: float = 20) -> GatewayProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"gateway exited: {self.process.stderr.read() if self.process.stderr else ''}"
                )
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("gateway did not become ready")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=5, **kwargs)
