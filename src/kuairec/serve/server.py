"""The listening process: uvicorn on sockets bound only once the models are loaded.

The run is loaded first, in this process; only then are the sockets bound, so ``/health``
answers as soon as a connection is accepted. With ``workers > 1`` the loaded process
forks that many uvicorn workers: the loaded arrays are shared copy-on-write (nothing
writes to them), so N workers cost little more memory than one. The parent forwards
SIGINT/SIGTERM to its workers and waits for them; a worker whose parent dies (even by
SIGKILL, which forwards nothing) shuts down by itself: each watches a pipe whose only
write end the parent holds, and the kernel closes it when the parent dies. Without that,
orphaned workers kept serving and holding the port ("Address already in use").

Every worker runs uvicorn with :mod:`kuairec.serve.protocol`'s limits (timeouts for idle
connections, headers and bodies; a header size limit; a connection limit; JSON protocol
errors), set by :class:`~kuairec.serve.limits.ServeLimits`.

Each worker gets its own listening socket on the one port (``SO_REUSEPORT``, where the
system has it), and the kernel spreads new connections over them by their address hash.
With one shared socket, whichever worker woke first accepted: hey's 64 connections
landed 56 on one worker and 8 on the other, so one core served the load while the
other idled. Without ``SO_REUSEPORT`` (or with one worker) all share one socket.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from typing import Any

from kuairec.errors import ConfigError
from kuairec.serve.limits import ServeLimits


def bind_workers(host: str, port: int, workers: int, backlog: int = 2048) -> list[socket.socket]:
    """One listening socket per worker on ``host:port`` (port 0: a free port, the same for
    all), or a single shared one where ``SO_REUSEPORT`` is missing or ``workers == 1``."""
    if workers <= 1 or not hasattr(socket, "SO_REUSEPORT"):
        return [bind(host, port, backlog)]
    # A plain bind first: it fails if anything already listens there (another server's
    # SO_REUSEPORT group too, which would otherwise silently share our connections), and
    # a later server's plain probe fails against ours. Port 0 picks the port here.
    probe = bind(host, port, backlog)
    port = probe.getsockname()[1]
    probe.close()
    socks: list[socket.socket] = []
    try:
        for _ in range(workers):
            socks.append(bind(host, port, backlog, reuse_port=True))
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def bind(host: str, port: int, backlog: int = 2048, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def run_server(
    app: Any,
    socks: list[socket.socket],
    workers: int = 1,
    log_level: str = "warning",
    limits: ServeLimits | None = None,
) -> None:
    """Serve ``app`` until interrupted, in this process or ``workers`` forks: worker i
    listens on ``socks[i]`` (or on the one shared socket)."""
    import uvicorn

    from kuairec.serve.protocol import protocol_class

    limits = limits or ServeLimits()
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
        backlog=2048,
        http=protocol_class(limits),
        timeout_keep_alive=limits.keep_alive,  # type: ignore[arg-type] - a float works
    )
    if workers <= 1:
        uvicorn.Server(config).run(sockets=socks[:1])
        return
    parent_alive, parent_end = os.pipe()  # EOF on the read end: the parent is gone
    children = []
    for i in range(workers):
        own = socks[i] if len(socks) == workers else socks[0]
        pid = os.fork()
        if pid == 0:  # pragma: no cover - a worker process
            code = 0
            try:
                os.close(parent_end)
                for other in socks:
                    if other is not own:
                        other.close()
                server = uvicorn.Server(config)
                _exit_with_parent(parent_alive, server)
                server.run(sockets=[own])
            except BaseException as exc:  # noqa: BLE001 - a worker never returns to the parent
                code = 1
                print(f"error: worker {os.getpid()} stopped: {_why(exc)}", file=sys.stderr)
            finally:
                os._exit(code)
        children.append(pid)
    os.close(parent_alive)
    for sock in socks:  # the workers hold them; a connection must not wait in the parent's
        sock.close()
    _supervise(children)


def _exit_with_parent(fd: int, server: Any) -> None:
    """Shut ``server`` down gracefully when ``fd`` (the read end of a pipe whose write end
    only the parent holds) reaches EOF: the parent has died, however it died."""

    def watch() -> None:
        try:
            while os.read(fd, 1):
                pass
        except OSError:
            pass
        server.should_exit = True

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _supervise(children: list[int]) -> None:
    """Wait for the workers, forwarding SIGINT/SIGTERM to them; say which worker ended
    badly, and how, the moment it does (the others go on serving)."""

    def forward(signum: int, frame: Any) -> None:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    failed = 0
    left = set(children)
    while left:
        try:
            pid, status = os.waitpid(-1, 0)
        except InterruptedError:  # pragma: no cover
            continue
        except ChildProcessError:  # pragma: no cover - none left
            break
        left.discard(pid)
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, -signal.SIGTERM):
            failed += 1
            how = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
            print(
                f"error: server worker {pid} {how}; {len(left)} worker(s) still serving",
                file=sys.stderr,
                flush=True,
            )
    if failed:
        print(f"error: {failed} worker(s) failed", file=sys.stderr)
        raise SystemExit(1)


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
