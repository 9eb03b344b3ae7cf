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
        children = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
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
