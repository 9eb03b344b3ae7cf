"""The listening process: uvicorn on a socket bound only once the models are loaded.

The run is loaded first, in this process; only then is the socket bound, so ``/health``
answers as soon as a connection is accepted. With ``workers > 1`` the loaded process
forks that many uvicorn workers sharing the one socket: the loaded arrays are shared
copy-on-write (nothing writes to them), so N workers cost little more memory than one.
The parent forwards SIGINT/SIGTERM to its workers and waits for them.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from typing import Any

from kuairec.errors import ConfigError


def bind(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def run_server(app: Any, sock: socket.socket, workers: int = 1, log_level: str = "warning") -> None:
    """Serve ``app`` on ``sock`` until interrupted, in this process or ``workers`` forks."""
    import uvicorn

    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
        backlog=2048,
    )
    if workers <= 1:
        uvicorn.Server(config).run(sockets=[sock])
        return
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - a worker process
            code = 0
            try:
                uvicorn.Server(config).run(sockets=[sock])
            except BaseException:  # noqa: BLE001 - a worker must never return into the parent
                code = 1
            finally:
                os._exit(code)
        children.append(pid)
    _supervise(children)


def _supervise(children: list[int]) -> None:
    def forward(signum: int, frame: Any) -> None:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    failed = 0
    for pid in children:
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:  # pragma: no cover
                continue
        failed += os.waitstatus_to_exitcode(status) not in (0, -signal.SIGTERM)
    if failed:
        print(f"error: {failed} worker(s) failed", file=sys.stderr)
        raise SystemExit(1)
