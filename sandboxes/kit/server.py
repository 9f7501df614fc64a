"""Serving a sandbox: Werkzeug's threaded server, in a thread (tests) or as a process.

From tests::

    running = serve_in_thread(app, port=0)   # 0 = any free port
    ... running.base_url, running.app ...
    running.stop()                           # or use it as a context manager

As a process, each sandbox's ``__main__`` calls `main`, which reads ``--host`` and
``--port`` (defaults from ``<PREFIX>_HOST`` / ``<PREFIX>_PORT``), prints one line with the
URL and serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from dataclasses import dataclass
from typing import Any, Callable

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

DEFAULT_HOST = "127.0.0.1"


class QuietRequestHandler(WSGIRequestHandler):
    """No access log line per request (tests make hundreds and read /_sandbox/requests)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@dataclass
class RunningSandbox:
    """A sandbox serving in a background thread. Call `stop()` when done."""

    app: Any
    base_url: str
    server: BaseWSGIServer
    thread: threading.Thread

    def stop(self) -> None:
        self.app.stop()
        self.server.shutdown()  # returns once serve_forever has exited
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve_in_thread(app: Any, port: int = 0, *, host: str = DEFAULT_HOST, quiet: bool = True) -> RunningSandbox:
    """Serve `app` on `host`:`port` from a background thread, then call ``app.start()``."""
    server = make_server(
        host, port, app, threaded=True, request_handler=QuietRequestHandler if quiet else WSGIRequestHandler
    )
    url_host = "127.0.0.1" if host in ("", "0.0.0.0") else host
    if ":" in url_host:
        url_host = f"[{url_host}]"  # IPv6 literal
    base_url = f"http://{url_host}:{server.server_port}"
    app.server_url = base_url
    # A short poll interval so stop() returns promptly (shutdown waits for one poll).
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"{app.name}-sandbox-http", daemon=True
    )
    thread.start()
    app.start()
    return RunningSandbox(app=app, base_url=base_url, server=server, thread=thread)


def main(
    argv: list[str] | None,
    *,
    title: str,
    description: str,
    env_prefix: str,
    default_port: int,
    serve: Callable[[argparse.Namespace], RunningSandbox],
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """``python -m sandboxes.<name>``: serve until SIGINT or SIGTERM; exit 0."""
    prog = "python -m sandboxes." + title.split()[0].lower()
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", default=os.environ.get(f"{env_prefix}_HOST") or DEFAULT_HOST)
    # String defaults go through type=int too, so a bad env value gets argparse's message.
    parser.add_argument("--port", type=int, default=os.environ.get(f"{env_prefix}_PORT") or str(default_port))
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        running = serve(args)
    except (ValueError, TypeError) as exc:
        parser.error(str(exc))
    except OSError as exc:
        parser.error(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")

    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    # The app's own name: one package may serve several products (the connector sandbox).
    print(f"{running.app.name} sandbox listening on {running.base_url}", flush=True)
    # A timed wait, so the main thread wakes up to notice the flag set by the handler.
    while not stop.wait(0.5):
        pass
    running.stop()
    return 0
