"""``kuairec serve`` as a real process: uvicorn on 127.0.0.1 and a free port, started and
stopped by the test (also when it fails). The port opens only once the models are
loaded, so the first connection that succeeds gets /health 200 at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def test_real_server_answers_once_listening(serve_run: Path, server) -> None:
    with server(serve_run) as (url, opened):
        with httpx.Client(base_url=url, timeout=10) as c:
            health = c.get("/health")  # the very first request after the port opened
            assert health.status_code == 200 and health.json()["status"] == "ok"
            user = c.get("/users", params={"limit": 1}).json()["user_ids"][0]
            r = c.get(f"/users/{user}/recommendations", params={"k": 5, "model": "als"})
            assert r.status_code == 200 and len(r.json()["items"]) == 5
            vid = r.json()["items"][0]["video_id"]
            r = c.post("/recommendations", json={"history": [{"video_id": vid}], "k": 3})
            assert r.status_code == 200 and len(r.json()["items"]) == 3
            assert c.get("/users/987654321/recommendations").status_code == 404
            assert c.get("/").status_code == 200
    assert opened < 120


def test_forked_workers_serve_and_stop_on_sigterm(serve_run: Path, server) -> None:
    with server(serve_run, "--workers", "2") as (url, _):
        with httpx.Client(base_url=url, timeout=10) as c:
            answers = {c.get("/models").json()["default_model"] for _ in range(20)}
            assert len(answers) == 1
            assert c.get("/videos", params={"limit": 2}).status_code == 200


def test_a_worker_that_dies_is_reported_at_once(serve_run: Path, server_with_process) -> None:
    import os
    import signal
    import time

    with server_with_process(serve_run, "--workers", "2") as (url, _, proc, log):
        deadline = time.monotonic() + 30
        while len(children := _children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)  # the port opens just before the workers fork
        assert len(children) == 2, children
        victim = int(children[0])
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 20
        text = ""
        while time.monotonic() < deadline:
            log.seek(0)
            text = log.read().decode()
            if "error: server worker" in text:
                break
            time.sleep(0.2)
        assert f"error: server worker {victim} killed by signal 9" in text
        assert "1 worker(s) still serving" in text
        with httpx.Client(base_url=url, timeout=10) as c:  # the other worker still answers
            assert c.get("/health").status_code == 200


def test_bad_run_folder_fails_before_listening(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "kuairec", "serve", "--run", str(tmp_path), "--port", "0"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "no saved models" in done.stderr


@pytest.mark.skipif(not hasattr(__import__("socket"), "SO_REUSEPORT"), reason="no SO_REUSEPORT")
def test_each_worker_gets_its_own_socket_and_connections_are_spread() -> None:
    """One shared socket let whichever worker woke first take most connections (56 of 64
    on one of two workers); per-worker SO_REUSEPORT sockets are spread by the kernel."""
    import select
    import socket

    from kuairec.serve.server import bind_workers

    socks = bind_workers("127.0.0.1", 0, 2)
    try:
        ports = {s.getsockname()[1] for s in socks}
        assert len(socks) == 2 and len(ports) == 1
        (port,) = ports
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(32)]
        accepted = [0, 0]
        for _ in range(200):
            ready, _, _ = select.select(socks, [], [], 0.05)
            for s in ready:
                conn, _ = s.accept()
                conn.close()
                accepted[socks.index(s)] += 1
            if sum(accepted) == 32:
                break
        assert sum(accepted) == 32
        assert min(accepted) > 0  # all 32 on one socket: chance 2 ** -31 when spread
        for c in clients:
            c.close()
    finally:
        for s in socks:
            s.close()
    (single,) = bind_workers("127.0.0.1", 0, 1)  # one worker: one plain socket
    single.close()


@pytest.mark.skipif(not hasattr(__import__("socket"), "SO_REUSEPORT"), reason="no SO_REUSEPORT")
def test_a_second_server_on_the_same_port_is_refused_not_merged() -> None:
    """SO_REUSEPORT lets any socket of the same user join a port; a second server must
    still fail with 'cannot listen' instead of taking half of the first one's traffic."""
    from kuairec.errors import ConfigError
    from kuairec.serve.server import bind_workers

    first = bind_workers("127.0.0.1", 0, 2)
    port = first[0].getsockname()[1]
    try:
        for workers in (2, 1):
            with pytest.raises(ConfigError, match="cannot listen"):
                bind_workers("127.0.0.1", port, workers)
    finally:
        for s in first:
            s.close()


# ---------------------------------------------------------------------- facing a network
def _connect(url: str):
    import socket

    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def _read_all(sock) -> bytes:
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def _json_error(raw: bytes, status: int) -> dict:
    import json

    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), raw[:200]
    assert b"content-type: application/json" in head.lower()
    return json.loads(body)


def _low_fd_limit(n: int):
    def limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))

    return limit


def test_slow_clients_are_timed_out_and_health_keeps_answering(serve_run: Path, server) -> None:
    """21 partial requests held 75 s used to stay open; with a low descriptor limit they
    exhausted the server and /health failed. Here the server may open 64 files, 40
    clients hold sockets (idle, half a header, half a body), /health still answers, and
    every held socket is closed by the server within its timeout."""
    import time

    args = ("--header-timeout", "1", "--body-timeout", "2", "--keep-alive", "1")
    with server(serve_run, *args, preexec_fn=_low_fd_limit(64)) as (url, _):
        held = []
        start = time.monotonic()
        for i in range(40):
            s = _connect(url)
            if i % 3 == 1:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            elif i % 3 == 2:
                head = b"POST /recommendations HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\n"
                s.sendall(head + b"Content-Type: application/json\r\n\r\n{")
            held.append((i % 3, s))
        with httpx.Client(base_url=url, timeout=10) as c:
            assert c.get("/health").status_code == 200  # while they are held
        for kind, s in held:
            raw = _read_all(s)  # returns when the server closes the socket
            closed = time.monotonic() - start
            assert closed < {0: 1, 1: 1, 2: 2}[kind] + 4, (kind, closed)
            if kind == 1:  # timed out, or closed to make room for /health (at the cap)
                status = 408 if b" 408 " in raw[:13] else 503
                words = "took more than 1 s" if status == 408 else "make room for a new one"
                assert words in _json_error(raw, status)["detail"]
            elif kind == 2:
                assert "request body took more than 2 s" in _json_error(raw, 408)["detail"]
            else:
                assert raw == b""  # idle: closed without a word
            s.close()
        with httpx.Client(base_url=url, timeout=10) as c:
            assert c.get("/health").status_code == 200


def test_protocol_errors_are_json_and_head_is_answered(live_server: str) -> None:
    for request, status, words in [
        (b"GARBAGE\r\n\r\n", 400, "malformed HTTP request"),
        (b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431, "65,536 bytes"),
    ]:
        s = _connect(live_server)
        s.sendall(request)
        assert words in _json_error(_read_all(s), status)["detail"]
        s.close()
    with httpx.Client(base_url=live_server, timeout=10) as c:
        head = c.head("/health")
        assert head.status_code == 200 and head.content == b""
        assert int(head.headers["content-length"]) == len(c.get("/health").content)


def test_workers_exit_when_their_parent_is_killed(
    serve_run: Path, server, server_with_process
) -> None:
    """kill -9 of a multi-worker server's parent used to leave its workers serving and
    holding the port: the next start failed with 'Address already in use'."""
    import os
    import signal
    import time

    with server_with_process(serve_run, "--workers", "2") as (url, _, proc, _):
        deadline = time.monotonic() + 30
        while len(workers := _children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)  # the port opens just before the workers fork
        assert len(workers) == 2
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        start = time.monotonic()
        while any(_alive(pid) for pid in workers) and time.monotonic() - start < 20:
            time.sleep(0.1)
        gone = time.monotonic() - start
        assert not any(_alive(pid) for pid in workers), "orphaned workers still running"
        port = int(url.rsplit(":", 1)[1])
        with server(serve_run, port=port) as (again, _):  # the port is free again
            assert httpx.get(f"{again}/health", timeout=10).status_code == 200
    print(f"workers gone {gone:.2f} s after the parent's SIGKILL")


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited (its parent, init, reaps it)
