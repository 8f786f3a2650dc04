"""A benchmark stand: its own PostgreSQL database, the stand-in ACM and a real `leerid-gateway serve`.

Everything the benchmarks need is made here, through the same commands an operator uses
(`leerid-gateway migrate`, `schools add`, `clients add --json`), and torn down at the end
(processes stopped by their own pid, the database dropped).

    with Stand() as stand:
        cookie = stand.login("lotte")
        ...
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import json
import os
import platform
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CLI = str(BIN / "leerid-gateway")
PG_HOST = os.environ.get("BENCH_PG_HOST", "127.0.0.1")
PG_ADMIN_DSN = f"postgresql://postgres@{PG_HOST}:5432/postgres"
RETURN_TO = "https://eteacher.example/app/"
OIDC_CLIENT_ID = "bench-gateway"
PARTNER_SCHOOL = "012345"

_FORM = re.compile(r'<form method="post" action="([^"]*)">(.*?)</form>', re.S)
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]*)" value="([^"]*)">')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def psql(sql: str, database: str = "postgres") -> str:
    out = subprocess.run(
        ["psql", "-h", PG_HOST, "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def create_database(name: str) -> None:
    psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    psql(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    with contextlib.suppress(subprocess.CalledProcessError):
        psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def machine() -> dict[str, str]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "postgres": psql("SHOW server_version"),
        "kernel": platform.release(),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "uncommitted_src_files": str(len(_git("status", "--short", "src", "migrations").splitlines())),
    }


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return out.stdout.strip()


def proc_stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name (which may hold spaces and parentheses):
    index 0 is field 3 (the state), so field N of proc(5) is index N - 3."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """The CPU time of a process's threads: the scheduler's own count, in nanoseconds, from
    /proc/PID/task/*/schedstat (its first field, sum_exec_runtime). utime + stime of /proc/PID/stat
    are the same time cut to clock ticks (10 ms): 0.25 ms per login in a block of 40 logins. A thread
    that ends between two readings takes its time with it (the gateway's threads live as long as it)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(143)


class Stand:
    def __init__(
        self,
        database: str = "leerid_bench",
        *,
        keep_log: bool = True,
        serve: list[str] | None = None,
        start_timeout: float = 30,
        **gateway_env: str,
    ) -> None:
        self.database = database
        self.start_timeout = start_timeout
        self.serve = serve or [CLI]
        self.keep_log = keep_log
        self.database_url = f"postgresql+asyncpg://postgres@{PG_HOST}:5432/{database}"
        self.gateway_port = free_port()
        self.provider_port = free_port()
        self.url = f"http://127.0.0.1:{self.gateway_port}"
        self.issuer = f"http://127.0.0.1:{self.provider_port}"
        self.oidc_secret = secrets.token_urlsafe(24)
        self.env = {
            "PATH": os.environ["PATH"],
            # Passed on so that a bench can run another checkout's src/ (before/after comparisons).
            **({"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}),
            "LEERID_ENVIRONMENT": "production",
            "LEERID_DATABASE_URL": self.database_url,
            "LEERID_DATABASE_POOL_SIZE": "10",
            "LEERID_PUBLIC_URL": self.url,
            "LEERID_OIDC_ISSUER": self.issuer,
            "LEERID_OIDC_CLIENT_ID": OIDC_CLIENT_ID,
            "LEERID_OIDC_CLIENT_SECRET": self.oidc_secret,
            "LEERID_ALLOWED_RETURN_URLS": RETURN_TO,
            "LEERID_SECRET_KEY": secrets.token_urlsafe(48),
            # Tokens stay valid for the whole run (the default is 300 s; 3600 is the allowed maximum).
            "LEERID_ACCESS_TOKEN_TTL": "3600",
            # Still counted (its cost is part of every login), never reached by the bench's logins.
            "LEERID_RATE_LIMIT_LOGIN": "1000000",
            **gateway_env,
        }
        self.provider: subprocess.Popen[str] | None = None
        self.gateway: subprocess.Popen[str] | None = None
        self.client_id = ""
        self.client_secret = ""

    # --- set-up ----------------------------------------------------------------------------------
    def cli(self, *args: str) -> str:
        out = subprocess.run([CLI, *args], env=self.env, check=True, capture_output=True, text=True)
        return out.stdout

    def __enter__(self) -> Stand:
        # `kill PID` of the benchmark (a background job ignores SIGINT) still cleans up.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            create_database(self.database)
            self.cli("migrate")
            self.cli("schools", "add", PARTNER_SCHOOL, "--name", "Sint-Jozefscollege (demo)")
            creds = json.loads(self.cli("clients", "add", "bench", "--json"))
            self.client_id, self.client_secret = creds["client_id"], creds["client_secret"]
            self.provider = subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "bench" / "provider_server.py"),
                    self.issuer,
                    str(self.provider_port),
                    OIDC_CLIENT_ID,
                    self.oidc_secret,
                    f"{self.url}/callback",
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self._wait(f"{self.issuer}/.well-known/openid-configuration", self.provider)
            log_dir = ROOT / "bench" / "results"
            log_dir.mkdir(exist_ok=True)
            self.log_path = log_dir / f"gateway-{self.database}.log"
            self._log = self.log_path.open("w") if self.keep_log else open(os.devnull, "w")
            self.gateway = subprocess.Popen(
                [
                    *self.serve,
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.gateway_port),
                    "--workers",
                    "1",
                ],
                env=self.env,
                cwd=ROOT,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                text=True,
            )
            self._wait(f"{self.url}/readyz", self.gateway, self.start_timeout)
            # The revocation listener must be up, or introspection asks the database every time.
            for _ in range(50):
                if httpx.get(f"{self.url}/readyz").json()["info"]["revocation_listener"] == "listening":
                    break
                time.sleep(0.1)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    @staticmethod
    def _wait(url: str, process: subprocess.Popen[Any], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"process exited ({process.returncode}); see bench/results/gateway-*.log")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{url} did not answer")

    def __exit__(self, *exc: object) -> None:
        for process in (self.gateway, self.provider):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
        if not os.environ.get("BENCH_KEEP_DB"):
            drop_database(self.database)

    @property
    def gateway_pid(self) -> int:
        assert self.gateway is not None
        return self.gateway.pid

    # --- a pupil's browser -------------------------------------------------------------------------
    def login(self, pupil: str = "lotte", http: httpx.Client | None = None) -> str:
        """The whole journey (/login → the stand-in's page → /callback); returns the session cookie."""
        own = http is None
        http = http or httpx.Client(follow_redirects=False, timeout=15)
        try:
            start = http.get(f"{self.url}/login", params={"return_to": RETURN_TO})
            assert start.status_code == 303, start.text[:300]
            authorize = start.headers["location"]
            page = http.get(authorize)
            match = _FORM.search(page.text)
            assert match is not None, page.text[:300]
            fields = {html.unescape(k): html.unescape(v) for k, v in _HIDDEN.findall(match.group(2))}
            action = str(httpx.URL(authorize).join(html.unescape(match.group(1))))
            answer = http.post(action, data={**fields, "pupil": pupil})
            assert answer.status_code == 303, answer.text[:300]
            done = http.get(answer.headers["location"])
            assert done.status_code == 303, done.text[:300]
            cookie = done.cookies.get("leerid_session") or http.cookies.get("leerid_session")
            assert cookie, "no session cookie"
            return str(cookie)
        finally:
            if own:
                http.close()

    def token(self, cookie: str) -> str:
        answer = httpx.post(f"{self.url}/token", cookies={"leerid_session": cookie})
        answer.raise_for_status()
        return str(answer.json()["access_token"])

    def introspect(self, token: str) -> dict[str, Any]:
        answer = httpx.post(
            f"{self.url}/introspect", data={"token": token}, auth=(self.client_id, self.client_secret)
        )
        answer.raise_for_status()
        return dict(answer.json())
