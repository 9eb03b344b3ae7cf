"""What a client can make ``kuairec serve`` hold: prints the figures of docs/serving.md's
"Facing a network" table, against a real server on 127.0.0.1 (only ever that address).

Each case starts a fresh ``kuairec serve --run RUN`` (from ``--src``, default this
checkout's ``src``: point it at another checkout's ``src`` to measure a version before a
change) and reads the worker's peak resident memory from ``/proc/<pid>/status``
(``VmHWM``, reset through ``clear_refs`` before each case):

- ``body``: one POST of a 208 MB JSON history (13M entries);
- ``batch``: ``hey -n 32 -c 8`` POSTing batches of 1,000 users at each ``--k``;
- ``held``: 40 clients hold half-sent requests while the server may open 64 files; is
  ``/health`` answered at 0.5, 5, 12 and 30 s, and how many held sockets are still open;
- ``parent``: ``--workers 2``, SIGKILL to the parent; how long until the workers are
  gone, and whether a new server can listen on the port.

    python benchmarks/bench_serve_limits.py --run runs/<id> [--src ../other/src]
        [--cases body,batch,held,parent] [--k 536,100]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HOST = "127.0.0.1"
SRC = Path(__file__).resolve().parents[1] / "src"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextmanager
def _server(
    src: Path, run: Path, *args: str, port: int | None = None, files: int | None = None
) -> Iterator[tuple[subprocess.Popen, int]]:
    port = port or _free_port()

    def limit() -> None:
        if files:
            resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))

    cmd = [sys.executable, "-m", "kuairec", "serve", "--run", str(run), "--host", HOST]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), "-q", *args],
        env={**os.environ, "PYTHONPATH": str(src)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=limit,
    )
    try:
        deadline = time.monotonic() + 300
        while not _accepts(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"no server from {src} on port {port}")
            time.sleep(0.2)
        yield proc, port
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)


def _accepts(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def case_body(src: Path, run: Path) -> None:
    import httpx

    with _server(src, run) as (proc, port):
        idle = _mb(proc.pid, "VmRSS:")
        _reset_peak(proc.pid)
        body = b'{"history": [' + b",".join([b'{"video_id": 1}'] * 13_000_000) + b"]}"
        start = time.monotonic()
        r = httpx.post(
            f"http://{HOST}:{port}/recommendations",
            content=body,
            timeout=600,
            headers={"content-type": "application/json"},
        )
        print(
            f"body: {len(body) / 1e6:.0f} MB -> {r.status_code} in "
            f"{time.monotonic() - start:.1f} s; RSS idle {idle:.0f} MB, peak "
            f"{_mb(proc.pid, 'VmHWM:'):.0f} MB, after {_mb(proc.pid, 'VmRSS:'):.0f} MB"
        )


def case_batch(src: Path, run: Path, ks: list[int]) -> None:
    import httpx

    with _server(src, run) as (proc, port):
        users = httpx.get(f"http://{HOST}:{port}/users?limit=1000", timeout=60).json()["user_ids"]
        users = (users * (1000 // len(users) + 1))[:1000]
        for k in ks:
            _reset_peak(proc.pid)
            with tempfile.NamedTemporaryFile("w", suffix=".json") as fh:
                json.dump({"user_ids": users, "k": k, "model": "als"}, fh)
                fh.flush()
                start = time.monotonic()
                out = subprocess.run(
                    [
                        "hey",
                        "-n",
                        "32",
                        "-c",
                        "8",
                        "-t",
                        "300",
                        "-m",
                        "POST",
                        "-T",
                        "application/json",
                        "-D",
                        fh.name,
                        f"http://{HOST}:{port}/recommendations/batch",
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                ).stdout
            codes = " ".join(line.strip() for line in out.splitlines() if "responses" in line)
            size = " ".join(line.split()[-2] for line in out.splitlines() if "Size/request" in line)
            print(
                f"batch: 8 x 1,000 users x k={k}: {codes or 'no answer'}; {size} bytes each; "
                f"{time.monotonic() - start:.1f} s; peak RSS {_mb(proc.pid, 'VmHWM:'):.0f} MB"
            )


def case_held(src: Path, run: Path) -> None:
    import httpx

    with _server(src, run, files=64) as (_, port):
        held = []
        for _ in range(40):
            s = socket.create_connection((HOST, port))
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            held.append(s)
        start = time.monotonic()
        for when in (0.5, 5, 12, 30):
            time.sleep(max(0.0, start + when - time.monotonic()))
            try:
                answer = httpx.get(f"http://{HOST}:{port}/health", timeout=5).status_code
            except httpx.HTTPError as exc:
                answer = type(exc).__name__
            print(
                f"held: t={when:>4} s: /health -> {answer}; held sockets still open: "
                f"{sum(_open(s) for s in held)}"
            )
        for s in held:
            s.close()


def _open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b"" and False
    except BlockingIOError:
        return True
    except OSError:
        return False


def case_parent(src: Path, run: Path) -> None:
    port = _free_port()
    with _server(src, run, "--workers", "2", port=port) as (proc, _):
        deadline = time.monotonic() + 60
        while len(workers := _children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        start = time.monotonic()
        while any(map(_alive, workers)) and time.monotonic() - start < 15:
            time.sleep(0.05)
        left = sum(map(_alive, workers))
        again = "the port is free"
        if left:
            cmd = [sys.executable, "-m", "kuairec", "serve", "--run", str(run), "--host", HOST]
            done = subprocess.run(
                [*cmd, "--port", str(port), "-q"],
                capture_output=True,
                text=True,
                timeout=120,
                env={**os.environ, "PYTHONPATH": str(src)},
            )
            again = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "started"
        print(
            f"parent: SIGKILL; {left} of 2 workers alive after {time.monotonic() - start:.2f} s;"
            f" a new server on the port: {again}"
        )


def _children(pid: int) -> list[int]:
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
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--src", type=Path, default=SRC)
    ap.add_argument("--cases", default="body,batch,held,parent")
    ap.add_argument("--k", default="536,100")
    args = ap.parse_args()
    cases = args.cases.split(",")
    print(f"src {args.src}; run {args.run}")
    if "body" in cases:
        case_body(args.src, args.run)
    if "batch" in cases:
        case_batch(args.src, args.run, [int(k) for k in args.k.split(",")])
    if "held" in cases:
        case_held(args.src, args.run)
    if "parent" in cases:
        case_parent(args.src, args.run)


if __name__ == "__main__":
    main()
