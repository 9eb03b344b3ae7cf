"""The ``kuairec`` command line: a thin layer over library functions.

Each command group lives in its own module (``data``, ``run``, ``eda`` ...). ``main()``
maps every :class:`~kuairec.errors.KuaiRecError` (and a few OS errors) to a one-line
message on stderr and a non-zero exit code: the user never sees a traceback.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

import click

from kuairec import __version__
from kuairec.errors import KuaiRecError


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C: every ``finally`` and ``except
    BaseException`` on the way out runs (temporary folders are discarded, locks
    released), then :func:`main` exits with 143 (128 + SIGTERM)."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Handle SIGTERM like SIGINT while the CLI runs (main thread only; the previous
    handler is restored afterwards, so embedding programs and tests keep theirs)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kuairec")
def app() -> None:
    """kuairec: load, explore, train, compare and serve recommenders on KuaiRec 2.0.

    Without --data, commands use the synthetic KuaiRec-shaped default data, generated on
    demand into the cache folder ($KUAIREC_CACHE or the per-user cache directory).
    """


def _register() -> None:
    # Each module adds its commands to `app`; imports inside them stay light.
    from kuairec.cli import data as _data  # noqa: F401

    for mod in ("run", "eda", "serve"):
        try:
            __import__(f"kuairec.cli.{mod}")
        except ModuleNotFoundError as exc:  # a command group not built yet
            if exc.name != f"kuairec.cli.{mod}":
                raise


_register()


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning library errors into one-line messages.

    SIGTERM is handled like Ctrl-C (:class:`Terminated`): the work stops through the
    normal exception path, so nothing half-written is left, and the exit code is 143."""
    try:
        with _sigterm_as_interrupt():
            app.main(args=argv, prog_name="kuairec", standalone_mode=False)
    except Terminated:
        click.echo("Terminated.", err=True)
        return 143
    except click.exceptions.Abort as exc:  # click turns KeyboardInterrupt into Abort
        if isinstance(exc.__cause__, Terminated):
            click.echo("Terminated.", err=True)
            return 143
        click.echo("Aborted.", err=True)
        return 130
    except click.UsageError as exc:  # one line, with where to get help
        cmd = exc.ctx.command_path if exc.ctx is not None else "kuairec"
        click.echo(f"error: {exc.format_message()} (see '{cmd} --help')", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        return exc.exit_code
    except KuaiRecError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except (
        FileNotFoundError,
        FileExistsError,
        PermissionError,
        IsADirectoryError,
        NotADirectoryError,
    ) as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    except MemoryError:
        click.echo("error: out of memory (try a smaller --scale or fewer models)", err=True)
        return 1
    except Exception as exc:  # last resort: one line, and a hint to get the traceback
        if os.environ.get("KUAIREC_DEBUG"):
            raise
        click.echo(
            f"error: {type(exc).__name__}: {exc} (set KUAIREC_DEBUG=1 for a traceback)", err=True
        )
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
