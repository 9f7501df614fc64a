"""One partner endpoint: its session, timeouts and pacing, and the one place requests are sent."""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable

import requests

from .classify import Partner, json_answer, status_error, transport_error

log = logging.getLogger(__name__)


def session_for(base_url: str) -> requests.Session:
    """A Session that takes its proxy and CA settings from the environment once.

    requests re-reads HTTP(S)_PROXY, NO_PROXY and the CA-bundle variables from os.environ
    on every request (two scans of the whole environment per call: several per cent of a
    step's CPU). Reading them when the client is built behaves the same, once.
    """
    session = requests.Session()
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    session.trust_env = False
    return session


class PartnerConnection:
    """A partner's base URL, reached with explicit timeouts through one session.

    `connect_timeout` and `read_timeout` are seconds, per request; keep their sum below
    the calling task's soft time limit. `session` lets a caller share a Session or pass a
    stub in tests. `before_request` is called before every request (Chairside's
    per-connection rate limit): it may sleep, or raise a TransientPartnerError, in which
    case nothing is sent.
    """

    def __init__(
        self,
        partner: Partner,
        base_url: str,
        *,
        connect_timeout: float = 3.05,
        read_timeout: float = 10.0,
        session: requests.Session | None = None,
        before_request: Callable[[], object] | None = None,
    ):
        self.partner = partner
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.session = session if session is not None else session_for(self.base_url)
        self.before_request = before_request

    def send(self, method: str, path: str, *, what: str, is_write: bool, **request_args: Any) -> requests.Response:
        """One round trip; returns the response whatever its status, raises the port's
        error when none came back. Logs method, path (ids only, never PHI; no query
        string), status and elapsed milliseconds."""
        if self.before_request is not None:
            self.before_request()
        name = self.partner.name
        started = time.monotonic()
        try:
            response = self.session.request(
                method,
                self.base_url + path,
                timeout=(self.connect_timeout, self.read_timeout),
                # A redirect is in no partner's contract: following one would turn a POST
                # into a GET, or re-send credentials to wherever it points.
                allow_redirects=False,
                **request_args,
            )
        except requests.RequestException as exc:
            log.warning("%s %s %s failed after %d ms: %s", name, method, path, _ms_since(started), type(exc).__name__)
            raise transport_error(
                self.partner, exc, what=what, is_write=is_write,
                connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
            ) from exc
        log.info("%s %s %s -> %d in %d ms", name, method, path, response.status_code, _ms_since(started))
        return response

    def raise_for_status(self, response: requests.Response, *, what: str, is_write: bool) -> None:
        error = status_error(self.partner, response, what=what, is_write=is_write)
        if error is not None:
            raise error

    def json(self, response: requests.Response, *, what: str, is_write: bool) -> Any:
        return json_answer(self.partner, response, what=what, is_write=is_write)

    def call(self, method: str, path: str, *, what: str, is_write: bool, **request_args: Any) -> Any:
        """send, raise_for_status and json in one: the decoded body of a 2xx."""
        response = self.send(method, path, what=what, is_write=is_write, **request_args)
        self.raise_for_status(response, what=what, is_write=is_write)
        return self.json(response, what=what, is_write=is_write)


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
