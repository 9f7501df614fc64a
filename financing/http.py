"""What the partner clients (CareCredit, Dentrix) share about talking HTTP."""

import os

import requests


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
