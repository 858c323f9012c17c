"""The ``cli-reference`` directive: every command of an argparse parser tree, as its ``--help``.

``.. cli-reference:: geounet.cli.command.build_parser`` calls the function and writes one
section per command and sub-command (``geounet``, ``geounet train``, ``geounet analyse noise``,
...), each holding that parser's help text exactly as the terminal prints it (at a fixed width of
100 columns, so that a build does not depend on the terminal it runs in). The help texts are
written for a terminal, so they are shown verbatim, not parsed as reStructuredText.
"""

from __future__ import annotations

import argparse
import functools
import importlib

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

HELP_WIDTH = 100


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser's sub-commands by name, in the order they were added (aliases left out)."""
    commands = {}
    for action in parser._actions:  # argparse keeps no public list of its sub-parsers
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                if subparser not in commands.values():
                    commands[name] = subparser
    return commands


def _help_text(parser: argparse.ArgumentParser) -> str:
    parser.formatter_class = functools.partial(parser.formatter_class, width=HELP_WIDTH)
    return parser.format_help()


class CliReference(SphinxDirective):
    required_arguments = 1  # dotted path of a function returning the root parser

    def run(self) -> list[nodes.Node]:
        module_name, _, function_name = self.arguments[0].rpartition(".")
        parser = getattr(importlib.import_module(module_name), function_name)()
        return [self._section(parser)]

    def _section(self, parser: argparse.ArgumentParser) -> nodes.section:
        section = nodes.section(ids=[nodes.make_id(parser.prog)])
        section += nodes.title(text=parser.prog)
        section += nodes.literal_block(text=_help_text(parser), language="text")
        for subparser in _subparsers(parser).values():
            section += self._section(subparser)
        return section


def setup(app):
    app.add_directive("cli-reference", CliReference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
