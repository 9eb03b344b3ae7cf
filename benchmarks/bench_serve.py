"""Benchmark ``kuairec serve`` on loopback with established load generators, and the cost
of EASE's sparse serving form.

Load (``load``): a real ``kuairec serve --run RUN --workers W`` on 127.0.0.1 (only ever
that address), then per model

- a fixed rate with Debian's ``hey``: ``-c 64 -q 8`` (8 requests/s on each of 64
  connections, 512/s) for ``--seconds`` (60 by default) on a known user's GET; goals for
  ALS and item-kNN: p99 <= 50 ms and no errors, EASE measured and reported; the same
  rate POSTing a new user's history for ``--post-seconds``. hey starts every
  connection's ticker together, so that is 64 requests at once every 125 ms; with
  ``--hey-phases 4`` the same rate is also offered by 4 staggered hey processes of 16
  connections (4 bursts of 16 per 125 ms), closer to evenly spaced arrivals;
- a closed loop with ``wrk`` (64 connections, 2 threads): the maximum requests/s with
  p50 and p99; known users drawn at random by a Lua script, and new-user histories
  POSTed by another (50 videos each, random watch ratios).

hey repeats one URL, so its known user is one with the median number of training videos
and its new-user history a fixed 50-video one. The load generator shares the machine's
cores with the server.

EASE (``ease``): NDCG@10 of the dense ``B`` against its top-N-per-item serving form on the
default synthetic data (or ``--run``'s data and saved EASE), and the time to score one
long history with each.

    python benchmarks/bench_serve.py load --run runs/<id> --workers 1,2
    python benchmarks/bench_serve.py ease [--run runs/<id>] [--top-n 50,100,200,500]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
HOST = "127.0.0.1"
GOAL_P99_MS = 50.0


# ---------------------------------------------------------------------- the server
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def start_server(run: Path, workers: int, log: Path) -> tuple[subprocess.Popen, int, float]:
    port = free_port()
    cmd = [sys.executable, "-m", "kuairec", "serve", "--run", str(run), "--host", HOST]
    cmd += ["--port", str(port), "--workers", str(workers), "-q"]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    while True:
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return proc, port, time.monotonic() - start
        except OSError:
            if proc.poll() is not None or time.monotonic() - start > 600:
                stop_server(proc)
                sys.exit(f"server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def get_json(port: int, path: str) -> dict:
    import httpx

    return httpx.get(f"http://{HOST}:{port}{path}", timeout=60).json()


# ---------------------------------------------------------------------- requests
def workload(run: Path, seed: int = 0) -> dict:
    """Known users (all, and the median one) and new-user histories, as raw ids."""
    from kuairec.pipeline.experiment import prepare
    from kuairec.pipeline.saved import config_for_model_dir

    folder = next(p for p in (run / "models").iterdir() if (p / "model.json").is_file())
    cfg = config_for_model_dir(folder, {})
    from kuairec.display.progress import Progress

    train = prepare(cfg, Progress(enabled=False)).train
    counts = train.interactions.user_counts()
    median_user = int(train.users.raw[np.argsort(counts, kind="stable")[counts.size // 2]])
    rng = random.Random(seed)
    items = train.items.raw[train.interactions.item_counts() > 0].tolist()
    bodies = [
        json.dumps(
            {
                "history": [
                    {"video_id": v, "watch_ratio": round(rng.uniform(0.2, 3), 2)}
                    for v in rng.sample(items, 50)
                ],
                "k": 10,
            }
        )  # fmt: skip
        for _ in range(200)
    ]
    return {"users": train.users.raw.tolist(), "median_user": median_user,
            "median_count": int(np.median(counts)), "bodies": bodies}  # fmt: skip


def lua_get(users: list[int], model: str) -> str:
    ids = ",".join(map(str, users))
    return (
        f"local users = {{{ids}}}\n"
        "request = function()\n"
        "  local u = users[math.random(#users)]\n"
        f'  return wrk.format("GET", "/users/" .. u .. "/recommendations?k=10&model={model}")\n'
        "end\n"
    )


def lua_post(bodies: list[str], model: str) -> str:
    quoted = ",\n".join(_lua_string(b.replace('"k": 10', f'"k": 10, "model": "{model}"'))
                        for b in bodies)  # fmt: skip
    return (
        f"local bodies = {{{quoted}}}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        "request = function()\n"
        '  return wrk.format("POST", "/recommendations", nil, bodies[math.random(#bodies)])\n'
        "end\n"
    )


def _lua_string(s: str) -> str:
    return "[==[" + s + "]==]"


# ---------------------------------------------------------------------- load generators
def run_hey(url: str, seconds: int, body: str | None = None) -> dict:
    cmd = ["hey", "-z", f"{seconds}s", "-c", "64", "-q", "8", "-t", "10"]
    if body is not None:
        cmd += ["-m", "POST", "-T", "application/json", "-d", body]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    codes = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", out))
    ok = int(codes.get("200", 0))
    errors = sum(int(n) for c, n in codes.items() if c != "200")
    err_block = out.split("Error distribution:")[1] if "Error distribution:" in out else ""
    errors += sum(int(n) for n in re.findall(r"\[(\d+)\]", err_block))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _pct(out, 50),
        "p99_ms": _pct(out, 99),
        "ok": ok,
        "errors": errors,
    }


def run_hey_phased(url: str, seconds: int, phases: int, body: str | None = None) -> dict:
    """The same 512/s over 64 connections as :func:`run_hey`, offered in ``phases``
    smaller bursts: hey's ``-q`` throttles each connection with its own ticker, all
    started together (rakyll/hey#143), so one ``hey -c 64 -q 8`` fires 64 requests in the
    same millisecond every 125 ms. ``phases`` hey processes of ``64 / phases``
    connections, started ``125 / phases`` ms apart, spread them over the period; their
    per-request CSV rows are merged for the percentiles."""
    per = 64 // phases
    cmd = ["hey", "-z", f"{seconds}s", "-c", str(per), "-q", "8", "-t", "10", "-o", "csv"]
    if body is not None:
        cmd += ["-m", "POST", "-T", "application/json", "-d", body]
    procs = []
    for _ in range(phases):
        procs.append(subprocess.Popen([*cmd, url], stdout=subprocess.PIPE, text=True))
        time.sleep(0.125 / phases)
    latencies, codes = [], []
    for proc in procs:
        out, _ = proc.communicate()
        for line in out.splitlines()[1:]:  # response-time,...,status-code,offset
            fields = line.split(",")
            latencies.append(float(fields[0]))
            codes.append(fields[6])
    lat = np.array(latencies) * 1000
    ok = sum(c == "200" for c in codes)
    return {
        "rps": round(len(lat) / seconds, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 1) if lat.size else float("nan"),
        "p99_ms": round(float(np.percentile(lat, 99)), 1) if lat.size else float("nan"),
        "ok": ok,
        "errors": len(codes) - ok,  # hey's CSV has no row for a failed connection
    }


def _pct(out: str, p: int) -> float:
    m = re.search(rf"\s{p}%% in ([\d.]+) secs".replace("%%", "%"), out)
    return round(float(m.group(1)) * 1000, 1) if m else float("nan")


def run_wrk(url: str, script: Path, seconds: int) -> dict:
    cmd = ["wrk", "-t", "2", "-c", "64", "-d", f"{seconds}s", "--latency", "-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    lat = dict(re.findall(r"^\s+(\d+)%\s+([\d.]+\w+)", out, flags=re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _ms(lat.get("50", "nan")),
        "p99_ms": _ms(lat.get("99", "nan")),
        "errors": (int(non2xx.group(1)) if non2xx else 0)
        + (sum(int(n) for n in re.findall(r"\d+", sock.group(1))) if sock else 0),
    }


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
    return round(float(m.group(1)) * scale, 2)


# ---------------------------------------------------------------------- load
def load(args: argparse.Namespace) -> None:
    from machine_info import machine

    run = Path(args.run)
    work = workload(run)
    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    print(f"machine: {machine()}; load average before: {os.getloadavg()}")
    print(f"hey's known user {work['median_user']} has {work['median_count']} training videos")
    results = []
    for workers in args.workers:
        proc, port, opened = start_server(run, workers, tmp / f"server-{workers}.log")
        try:
            health = get_json(port, "/health")
            print(f"\nworkers={workers}: port open after {opened:.1f} s "
                  f"(load_seconds {health['load_seconds']})")  # fmt: skip
            for model in args.models:
                results += load_model(port, model, workers, work, tmp, args)
        finally:
            stop_server(proc)
    print(f"\nload average after: {os.getloadavg()}")
    print(table(results))
    shutil.rmtree(tmp, ignore_errors=True)


def load_model(port: int, model: str, workers: int, work: dict, tmp: Path, args) -> list:
    base = f"http://{HOST}:{port}"
    get_url = f"{base}/users/{work['median_user']}/recommendations?k=10&model={model}"
    body = work["bodies"][0].replace('"k": 10', f'"k": 10, "model": "{model}"')
    (tmp / "get.lua").write_text(lua_get(work["users"], model))
    (tmp / "post.lua").write_text(lua_post(work["bodies"], model))
    rows = []
    post_url, phases = f"{base}/recommendations", args.hey_phases
    tests = [
        ("hey GET known user", lambda: run_hey(get_url, args.seconds)),
        ("hey POST new user", lambda: run_hey(post_url, args.post_seconds, body)),
    ]
    if phases > 1:
        tests += [
            (f"hey x{phases} GET known user",
             lambda: run_hey_phased(get_url, args.seconds, phases)),
            (f"hey x{phases} POST new user",
             lambda: run_hey_phased(post_url, args.post_seconds, phases, body)),
        ]  # fmt: skip
    tests += [
        ("wrk GET known users", lambda: run_wrk(base, tmp / "get.lua", args.wrk_seconds)),
        ("wrk POST new users", lambda: run_wrk(base, tmp / "post.lua", args.wrk_seconds)),
    ]
    if args.tests:
        wanted = {t.strip() for t in args.tests.split(",")}
        tests = [t for t in tests if t[0] in wanted]
    for kind, fn in tests:
        row = {"workers": workers, "model": model, "test": kind, **fn()}
        print(json.dumps(row))
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| workers | model | test | req/s | p50 ms | p99 ms | errors | goal |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        goal = ""
        if r["test"].startswith("hey") and r["model"] in ("als", "itemknn"):
            met = r["p99_ms"] <= GOAL_P99_MS and r["errors"] == 0
            goal = "met" if met else "MISSED"
        lines.append(f"| {r['workers']} | {r['model']} | {r['test']} | {r['rps']:.0f} | "
                     f"{r['p50_ms']} | {r['p99_ms']} | {r['errors']} | {goal} |")  # fmt: skip
    return "\n".join(lines)


# ---------------------------------------------------------------------- EASE
def ease(args: argparse.Namespace) -> None:
    """NDCG@10 and one long history's scoring time: dense B vs its top-N forms."""
    from kuairec.display.progress import Progress
    from kuairec.pipeline.config import load_run_config
    from kuairec.pipeline.experiment import prepare
    from kuairec.pipeline.fitting import evaluate_fitted

    quiet = Progress(enabled=False)
    if args.run:
        from kuairec.pipeline.saved import config_for_model_dir, load_saved

        cfg = config_for_model_dir(Path(args.run) / "models" / "ease", {"n_bootstrap": 0})
        exp = prepare(cfg, quiet)
        dense = load_saved(Path(args.run) / "models" / "ease", exp.train)
    else:
        from kuairec.models.registry import create_model

        cfg = load_run_config(None, {"n_bootstrap": 0})  # the default synthetic data
        exp = prepare(cfg, quiet)
        dense = create_model("ease", {}).fit(exp.train)
    print(f"data: {exp.protocol.data} ({exp.train.n_users} users x {exp.train.n_items} "
          f"videos); EASE config {dense.config}")  # fmt: skip
    history = _long_history(exp.train)
    print(f"| B | nnz | MB | NDCG@10 | vs dense | {history.nnz}-video history, ms |")
    print("|---|---|---|---|---|---|")
    base = None
    for top_n in [0, *args.top_n]:
        model = dense if top_n == 0 else dense.sparsified(top_n)
        result, _, _ = evaluate_fitted(model, exp, cfg)
        ndcg = float(result.metrics["ndcg@10"])
        base = ndcg if base is None else base
        b = model.b_
        nnz = b.size if top_n == 0 else b.nnz
        mb = b.nbytes / 1e6 if top_n == 0 else (b.data.nbytes + b.indices.nbytes) / 1e6
        ms = _time_history(model, history)
        name = "dense" if top_n == 0 else f"top {top_n}"
        print(f"| {name} | {nnz:,} | {mb:.0f} | {ndcg:.4f} | {ndcg - base:+.4f} | {ms:.2f} |")


def _long_history(train):
    """The training row of the user with the most videos, as a new user's history."""
    inter = train.interactions
    u = int(np.argmax(inter.user_counts()))
    return inter.csr("watch_ratio_mean")[[u]]


def _time_history(model, history, repeats: int = 20) -> float:
    model.recommend(history=history, k=10)
    start = time.perf_counter()
    for _ in range(repeats):
        model.recommend(history=history, k=10)
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    lp = sub.add_parser("load", help="hey and wrk against kuairec serve on 127.0.0.1")
    lp.add_argument("--run", required=True, help="run folder (scale 1.0: als,itemknn,ease)")
    lp.add_argument("--workers", type=_ints, default=[1, 2])
    lp.add_argument("--models", type=lambda v: v.split(","), default=["als", "itemknn", "ease"])
    lp.add_argument("--seconds", type=int, default=60, help="hey's fixed-rate duration")
    lp.add_argument("--post-seconds", type=int, default=20, help="hey's POST duration")
    lp.add_argument("--wrk-seconds", type=int, default=20, help="wrk's closed-loop duration")
    lp.add_argument("--hey-phases", type=int, default=4, choices=[0, 1, 2, 4, 8],
                    help="also offer hey's 512/s as this many staggered hey processes "
                    "(0 or 1: only the single hey)")  # fmt: skip
    lp.add_argument(
        "--tests", default=None, help="comma-separated test names to run (default: all)"
    )
    ep = sub.add_parser("ease", help="NDCG@10 of EASE's dense B vs its sparse top-N forms")
    ep.add_argument("--run", default=None, help="use this run's data and saved EASE")
    ep.add_argument("--top-n", type=_ints, default=[50, 100, 200, 500, 1000])
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    if args.what == "load":
        load(args)
    else:
        with threadpool_limits(2):
            ease(args)


def _ints(value: str) -> list[int]:
    return [int(v) for v in value.split(",") if v.strip()]


if __name__ == "__main__":
    main()
