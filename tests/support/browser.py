"""A scripted browser for end-to-end tests: real HTTP, a cookie jar, redirects followed by hand so
each hop can be asserted. It fills in the stand-in provider's forms as a pupil would."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx

_FORM = re.compile(r'<form method="post" action="([^"]*)">(.*?)</form>', re.S)
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]*)" value="([^"]*)">')


@dataclass
class Hop:
    method: str
    url: str
    data: dict[str, str] | None = None


def parse_form(page: str) -> tuple[str, dict[str, str]]:
    match = _FORM.search(page)
    if match is None:
        raise AssertionError("no form on the page")
    action = html.unescape(match.group(1))
    fields = {html.unescape(k): html.unescape(v) for k, v in _HIDDEN.findall(match.group(2))}
    return action, fields


class Browser:
    def __init__(self) -> None:
        self.http = httpx.Client(follow_redirects=False, timeout=15)

    def close(self) -> None:
        self.http.close()

    def start_login(self, gateway_url: str, return_to: str) -> httpx.Response:
        return self.http.get(f"{gateway_url}/login", params={"return_to": return_to})

    def choose_pupil(self, authorize_url: str, pupil: str) -> Hop:
        """Open ACM's login page and click the pupil; return the hop back to the gateway."""
        page = self.http.get(authorize_url)
        assert page.status_code == 200, page.text[:300]
        action, fields = parse_form(page.text)
        action = httpx.URL(authorize_url).join(action)
        answer = self.http.post(str(action), data={**fields, "pupil": pupil})
        if answer.status_code == 303:  # response_mode=query
            return Hop("GET", answer.headers["location"])
        assert answer.status_code == 200, answer.text[:300]  # response_mode=form_post
        target, data = parse_form(answer.text)
        return Hop("POST", target, data)

    def follow(self, hop: Hop) -> httpx.Response:
        if hop.method == "GET":
            return self.http.get(hop.url)
        return self.http.post(hop.url, data=hop.data)

    def login(self, gateway_url: str, pupil: str, return_to: str) -> httpx.Response:
        """The whole journey; returns the gateway's answer to the callback."""
        start = self.start_login(gateway_url, return_to)
        assert start.status_code == 303, start.text[:300]
        return self.follow(self.choose_pupil(start.headers["location"], pupil))

    def token(self, gateway_url: str) -> httpx.Response:
        return self.http.post(f"{gateway_url}/token")


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)
