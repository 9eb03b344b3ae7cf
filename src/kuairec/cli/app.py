"""The ``kuairec`` click group every command module adds its commands to."""

from __future__ import annotations

import click

from kuairec import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kuairec")
def app() -> None:
    """kuairec: load, explore, train, compare and serve recommenders on KuaiRec 2.0.

    Without --data, commands use the synthetic KuaiRec-shaped default data, generated on
    demand into the cache folder ($KUAIREC_CACHE or the per-user cache directory).
    """
