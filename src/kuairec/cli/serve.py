"""``kuairec serve``: the HTTP API and web page over a run's saved models."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import click

from kuairec.cli.app import app
from kuairec.serve.limits import ServeLimits

ServeDefaults = ServeLimits()


@app.command("serve")
@click.option(
    "--run",
    "run_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Run folder (runs/<id>): its config.json says where the data came from.",
)
@click.option(
    "--model",
    default=None,
    help="Default model [default: the run's best learned model by NDCG@10]. Every saved "
    "model of the run is served; a request's 'model' picks another.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0: any free."
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Server processes, forked after loading (they share the loaded models); one "
    "per core is best (docs/serving.md).",
)
@click.option(
    "--ease-top-n",
    type=click.IntRange(min=0),
    default=200,
    show_default=True,
    help="EASE serves a sparse B with this many weights per item; 0 serves the dense B.",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="warning",
    show_default=True,
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(min=1024),
    default=ServeDefaults.max_body_bytes,
    show_default=True,
    help="Largest request body; a larger one is a 413.",
)
@click.option(
    "--max-batch-work",
    type=click.IntRange(min=1),
    default=ServeDefaults.max_batch_work,
    show_default=True,
    help="Largest users x k of one batch request; more is a 413.",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(min=0.1, max=3600),
    default=ServeDefaults.header_timeout,
    show_default=True,
    help="Seconds from a request's first byte to the end of its headers.",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(min=0.1, max=3600),
    default=ServeDefaults.body_timeout,
    show_default=True,
    help="Seconds from the end of a request's headers to the end of its body.",
)
@click.option(
    "--keep-alive",
    type=click.FloatRange(min=0.1, max=3600),
    default=ServeDefaults.keep_alive,
    show_default=True,
    help="Seconds an idle connection stays open.",
)
@click.option(
    "--limit-concurrency",
    type=click.IntRange(min=1),
    default=ServeDefaults.limit_concurrency,
    show_default=True,
    help="Connections per worker (capped below the open-file limit); more get a 503.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress while loading.")
def serve_cmd(
    run_dir: Path,
    model: str | None,
    host: str,
    port: int,
    workers: int,
    ease_top_n: int,
    log_level: str,
    quiet: bool,
    **limit_options: float,
) -> None:
    """Serve a run's models: JSON API (OpenAPI docs at /docs) and a web page at /.

    Loads the data and every model first; the port opens only then, so /health answers
    as soon as it accepts connections.
    """
    from threadpoolctl import threadpool_limits

    from kuairec.display.progress import Progress
    from kuairec.serve.app import create_app
    from kuairec.serve.server import bind_workers, run_server
    from kuairec.serve.state import load_state

    threadpool_limits(1)  # one small product per request: BLAS threads would only contend
    state = load_state(run_dir, model, ease_top_n, Progress(enabled=not quiet))
    limits = ServeLimits(**limit_options)  # type: ignore[arg-type]
    application = create_app(state, limits=limits)
    # The loaded state holds ~1.2e5 long-lived containers (the catalogue's dicts, id maps):
    # a full collection walked them in 31-37 ms, stalling every request in flight (hey's
    # p99 showed it). Frozen out of the collector, they are never walked again, and forked
    # workers do not copy their pages by touching them.
    gc.collect()
    gc.freeze()
    socks = bind_workers(host, port, workers)
    limits = _below_open_file_limit(limits)  # counted now: the data and models are loaded
    shown = f"[{host}]" if ":" in host else host
    click.echo(
        f"serving {state.run_dir.name} at http://{shown}:{socks[0].getsockname()[1]}/ "
        f"(models: {', '.join(state.models)}; default {state.default_model}; "
        f"loaded in {state.load_seconds:.1f} s; {workers} worker(s))"
    )
    sys.stdout.flush()  # before forking: the workers must not print it again
    run_server(application, socks, workers, log_level, limits)


def _below_open_file_limit(limits: ServeLimits) -> ServeLimits:
    """Connections capped below the open-file limit, less the descriptors already open
    and a margin: at the cap the server closes an idle connection for a new one, so
    descriptors never run out (an accept() that fails drops the client unanswered)."""
    import dataclasses
    import os
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return limits
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:  # not Linux
        in_use = 64
    cap = max(1, min(limits.limit_concurrency, soft - in_use - 16))
    return dataclasses.replace(limits, limit_concurrency=cap)
