"""Arguments shared by the commands that read a config: ``--config`` and ``--set``."""

from __future__ import annotations

import argparse

from geounet import configs


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=None,
        help="TOML config with [task], [model], [train], or a packaged config's name: "
        f"{', '.join(configs.names())} (default: {configs.DEFAULT}, the main job)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value, e.g. --set train.steps=200 (repeatable)",
    )


def load_config_arg(args: argparse.Namespace):
    """The experiment config named by ``--config`` (a file or a packaged name) with the ``--set`` overrides."""
    from geounet.experiment.config import load_config

    return load_config(configs.resolve(args.config), args.overrides)
