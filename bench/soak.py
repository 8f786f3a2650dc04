"""Bounded soak test (issue 6): mixed load on loopback with a provider that misbehaves part of the
time, then a check that the database satisfies every reconciliation invariant.

    .venv/bin/python -m bench.soak                 # 10 minutes (the figure in docs/reliability.md)
    .venv/bin/python -m bench.soak --minutes 1     # a quick look

Everything runs on 127.0.0.1 and stops by itself: its own PostgreSQL database (dropped at the end),
the stand-in ACM with injected faults (bench/soak_provider.py) and one `leerid-gateway serve`
process with production settings. Load: logins of synthetic pupils (temporary, identified with
history, conflicting histories, non-partner schools), POST /token and /introspect for the sessions
made, introspection of garbage, and some logouts. Results: bench/results/soak-*.json and a Markdown
summary printed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import html
import json
import os
import random
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.soak_provider import account
from bench.stand import (
    CLI,
    PG_HOST,
    RETURN_TO,
    create_database,
    drop_database,
    free_port,
    machine,
    psql,
    rss_mib,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DATABASE = "leerid_soak"
_FORM = re.compile(r'<form method="post" action="([^"]*)">(.*?)</form>', re.S)
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]*)" value="([^"]*)">')


class Soak:
    def __init__(self, minutes: float, pupils: int, concurrency: int, seed: int) -> None:
        self.duration = minutes * 60
        self.pupils = pupils
        self.concurrency = concurrency
        self.random = random.Random(seed)
        self.seed = seed
        self.port, self.provider_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.issuer = f"http://127.0.0.1:{self.provider_port}"
        self.counts: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.cookies: list[str] = []
        self.logged_in: set[str] = set()
        self.samples: list[dict[str, Any]] = []
        self.stop_at = 0.0
        secret = secrets.token_urlsafe(24)
        self.oidc_secret = secret
        self.env = {
            "PATH": os.environ["PATH"],
            "LEERID_ENVIRONMENT": "production",
            "LEERID_DATABASE_URL": f"postgresql+asyncpg://postgres@{PG_HOST}:5432/{DATABASE}",
            "LEERID_DATABASE_POOL_SIZE": "10",
            "LEERID_PUBLIC_URL": self.url,
            "LEERID_OIDC_ISSUER": self.issuer,
            "LEERID_OIDC_CLIENT_ID": "soak-gateway",
            "LEERID_OIDC_CLIENT_SECRET": secret,
            "LEERID_ALLOWED_RETURN_URLS": RETURN_TO,
            "LEERID_SECRET_KEY": secrets.token_urlsafe(48),
            "LEERID_RATE_LIMIT_LOGIN": "1000000",
            "LEERID_OIDC_HTTP_TIMEOUT": "1.0",
        }

    # --- world ------------------------------------------------------------------------------------
    def cli(self, *args: str) -> str:
        return subprocess.run([CLI, *args], env=self.env, check=True, capture_output=True, text=True).stdout

    def start(self) -> None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        drop_database(DATABASE)
        create_database(DATABASE)
        self.cli("migrate")
        self.cli("schools", "add", "012345")
        creds = json.loads(self.cli("clients", "add", "soak", "--json"))
        self.client = (creds["client_id"], creds["client_secret"])
        self.provider = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.soak_provider",
                self.issuer,
                str(self.provider_port),
                "soak-gateway",
                self.oidc_secret,
                f"{self.url}/callback",
                str(self.pupils),
                str(self.seed),
            ],
            cwd=ROOT,
        )
        self.log = (RESULTS / "soak-gateway.log").open("w")
        self.gateway = subprocess.Popen(
            [CLI, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("gateway did not become ready")

    def stop(self) -> None:
        for process in (self.gateway, self.provider):
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        self.log.close()

    def sample(self, label: str) -> None:
        connections = psql(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{DATABASE}'")
        self.samples.append(
            {
                "at": label,
                "rss_mib": round(rss_mib(self.gateway.pid), 1),
                "db_connections": int(connections),
            }
        )

    # --- load -------------------------------------------------------------------------------------
    async def login(self, http: httpx.AsyncClient) -> None:
        i = self.random.randrange(self.pupils)
        pupil = f"p{i}" if self.random.random() < 0.5 else f"p{i}-id"
        http.cookies.clear()
        start = await http.get(f"{self.url}/login", params={"return_to": RETURN_TO})
        if start.status_code != 303:
            self.errors[f"/login {start.status_code}"] += 1
            return
        page = await http.get(start.headers["location"])
        match = _FORM.search(page.text)
        if match is None:
            self.errors["provider page without form"] += 1
            return
        fields = {html.unescape(k): html.unescape(v) for k, v in _HIDDEN.findall(match.group(2))}
        chosen = await http.post(
            str(httpx.URL(start.headers["location"]).join(html.unescape(match.group(1)))),
            data={**fields, "pupil": pupil},
        )
        done = await http.get(chosen.headers["location"])
        self.counts["login"] += 1
        if done.status_code == 303:
            self.counts["login ok"] += 1
            self.logged_in.add(pupil)
            cookie = done.cookies.get("leerid_session") or http.cookies.get("leerid_session")
            if cookie:
                self.cookies.append(cookie)
                if len(self.cookies) > 2000:
                    del self.cookies[: len(self.cookies) - 2000]
        elif done.status_code == 403:
            self.counts["login refused (no partner school)"] += 1
        elif done.status_code == 502:
            self.counts["login failed upstream (Dutch retry page)"] += 1
        else:
            self.errors[f"/callback {done.status_code}"] += 1

    async def token_and_introspect(self, http: httpx.AsyncClient) -> None:
        if not self.cookies:
            await asyncio.sleep(0.05)
            return
        cookie = self.random.choice(self.cookies)
        answer = await http.post(f"{self.url}/token", cookies={"leerid_session": cookie})
        self.counts["token"] += 1
        if answer.status_code == 401:
            self.counts["token for an ended session (merged away or logged out)"] += 1
            return
        if answer.status_code != 200:
            self.errors[f"/token {answer.status_code}"] += 1
            return
        token = answer.json()["access_token"]
        result = await http.post(f"{self.url}/introspect", data={"token": token}, auth=self.client)
        self.counts["introspect"] += 1
        if result.status_code != 200:
            self.errors[f"/introspect {result.status_code}"] += 1
        elif result.json()["active"] is not True:
            self.counts["introspect inactive right after issue (merge raced)"] += 1
        if self.random.random() < 0.01:
            await http.post(f"{self.url}/logout", cookies={"leerid_session": cookie})
            self.counts["logout"] += 1

    async def garbage(self, http: httpx.AsyncClient) -> None:
        token = secrets.token_urlsafe(self.random.randrange(10, 400))
        result = await http.post(f"{self.url}/introspect", data={"token": token}, auth=self.client)
        self.counts["introspect garbage"] += 1
        if result.status_code != 200 or result.json() != {"active": False}:
            self.errors[f"garbage introspection {result.status_code}"] += 1

    async def worker(self, job: Any) -> None:
        async with httpx.AsyncClient(timeout=20, follow_redirects=False) as http:
            while time.monotonic() < self.stop_at:
                try:
                    await job(http)
                except httpx.HTTPError as exc:
                    self.errors[f"client {type(exc).__name__}"] += 1

    async def sampler(self) -> None:
        while time.monotonic() < self.stop_at:
            await asyncio.sleep(30)
            self.sample(f"{int(time.monotonic() - self.started)} s")

    async def run_load(self) -> None:
        self.started = time.monotonic()
        self.stop_at = self.started + self.duration
        logins = max(1, self.concurrency // 3)
        jobs = (
            [self.login] * logins
            + [self.token_and_introspect] * (self.concurrency - logins - 1)
            + [self.garbage]
        )
        await asyncio.gather(self.sampler(), *(self.worker(job) for job in jobs))

    # --- invariants -------------------------------------------------------------------------------
    def invariants(self) -> dict[str, Any]:
        q = lambda sql: psql(sql, DATABASE)  # noqa: E731
        checks: dict[str, Any] = {}
        checks["identities"] = int(q("SELECT count(*) FROM identities"))
        checks["aliases"] = int(q("SELECT count(*) FROM account_aliases"))
        checks["leer_id shared by two identities"] = int(
            q(
                "SELECT count(*) FROM (SELECT leer_id_uuid FROM identities WHERE leer_id_uuid IS NOT NULL "
                "GROUP BY 1 HAVING count(*) > 1) t"
            )
        )
        checks["aliases without identity"] = int(
            q(
                "SELECT count(*) FROM account_aliases a LEFT JOIN identities i ON i.id = a.identity_id WHERE i.id IS NULL"
            )
        )
        events = dict(
            line.split("|")
            for line in q("SELECT type, count(*) FROM identity_events GROUP BY 1").splitlines()
        )
        created, merged, deleted = (
            int(events.get(k, 0)) for k in ("identity.created", "identity.merged", "identity.deleted")
        )
        checks["events"] = events
        checks["created - merged - deleted == identities"] = (
            created - merged - deleted == checks["identities"]
        )
        # Pupils at a non-partner school (every tenth) were refused on every login: nothing of them is kept.
        non_partner = [account(i, k) for i in range(self.pupils) if i % 10 == 9 for k in ("temp", "ident")]
        listed = ",".join(f"'{a}'" for a in non_partner) or "''"
        checks["rows of never-admitted pupils"] = int(
            q(f"SELECT count(*) FROM account_aliases WHERE account_uuid IN ({listed})")
        )
        # A pupil without conflicting history, seen both ways, is one identity carrying their leer_id.
        split = 0
        wrong_key = 0
        for i in range(self.pupils):
            if i % 10 == 9 or i % 25 in (23, 24):
                continue
            if f"p{i}" not in self.logged_in or f"p{i}-id" not in self.logged_in:
                continue
            rows = q(
                "SELECT DISTINCT i.id, coalesce(i.leer_id_uuid, '-') FROM account_aliases a JOIN identities i "
                f"ON i.id = a.identity_id WHERE a.account_uuid IN ('{account(i, 'temp')}', '{account(i, 'ident')}')"
            ).splitlines()
            if len(rows) != 1:
                split += 1
            elif rows[0].split("|")[1] != account(i, "leerid"):
                wrong_key += 1
        checks["pupils split over two identities"] = split
        checks["pupils whose identity lacks their leer_id"] = wrong_key
        checks["data-quality reports"] = int(q("SELECT count(*) FROM data_quality_reports"))
        verify = subprocess.run([CLI, "privacy-log", "verify"], env=self.env, capture_output=True, text=True)
        checks["privacy-log verify"] = "ok" if verify.returncode == 0 else verify.stdout + verify.stderr
        return checks


def report(soak: Soak, checks: dict[str, Any]) -> str:
    lines = [
        f"Soak run: {soak.duration / 60:.1f} min, {soak.pupils} synthetic pupils, {soak.concurrency} "
        f"concurrent clients, seed {soak.seed}; {machine()}",
        "",
        "| what | count |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in sorted(soak.counts.items())]
    lines += ["", "Errors by kind (anything not an expected outcome):", ""]
    lines += [f"- {k}: {v}" for k, v in sorted(soak.errors.items())] or ["- none"]
    lines += ["", "| sample | gateway RSS (MiB) | database connections |", "|---|---|---|"]
    lines += [f"| {s['at']} | {s['rss_mib']} | {s['db_connections']} |" for s in soak.samples]
    lines += ["", "| invariant | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in checks.items()]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--pupils", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    soak = Soak(args.minutes, args.pupils, args.concurrency, args.seed)
    soak.start()
    try:
        soak.sample("start")
        asyncio.run(soak.run_load())
        soak.sample("end of load")
        time.sleep(5)
        soak.sample("5 s after")
        checks = soak.invariants()
    finally:
        soak.stop()
        drop_database(DATABASE)
    text = report(soak, checks)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"soak-{stamp}.md").write_text(text + "\n")
    (RESULTS / f"soak-{stamp}.json").write_text(
        json.dumps(
            {"counts": soak.counts, "errors": soak.errors, "samples": soak.samples, "checks": checks},
            indent=2,
            default=str,
        )
    )
    print(text)
    healthy = (
        not soak.errors
        and checks["leer_id shared by two identities"] == 0
        and checks["pupils split over two identities"] == 0
        and checks["rows of never-admitted pupils"] == 0
        and checks["created - merged - deleted == identities"]
        and checks["privacy-log verify"] == "ok"
    )
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main())
