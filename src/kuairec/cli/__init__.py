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

from kuairec.cli.app import app
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


def _register() -> None:
    """Import each command module: each adds its commands to :data:`app`. A command
    module that fails to import is an installation problem; it is reported, never
    silently dropped (its commands would vanish from --help without a word)."""
    import importlib

    for mod in COMMAND_MODULES:
        importlib.import_module(f"kuairec.cli.{mod}")


COMMAND_MODULES = ("data", "run", "eda", "serve")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning library errors into one-line messages.

    SIGTERM is handled like Ctrl-C (:class:`Terminated`): the work stops through the
    normal exception path, so nothing half-written is left, and the exit code is 143."""
    try:
        with _sigterm_as_interrupt():
            _register()
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
    except ImportError as exc:  # a command module or a dependency it needs is missing
        click.echo(
            f"error: kuairec is not installed completely: {exc} (reinstall it: "
            "pip install -e '.[serve,deep,spark]')",
            err=True,
        )
        return 1
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
