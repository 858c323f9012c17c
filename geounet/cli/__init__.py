"""The ``geounet`` command: one thin module per group of subcommands; :func:`~geounet.cli.main` runs it."""

from geounet.cli.command import main

__all__ = ["main"]
