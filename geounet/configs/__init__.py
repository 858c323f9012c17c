"""The experiment configs shipped with geounet: one TOML file per task, ``<task>.toml``, and the
main job's, ``shallow_water_face.toml`` (the shallow-water task with the HEALPix face-image model).

``geounet --config NAME`` reads ``NAME.toml`` from here when ``NAME`` is not a file, and
without ``--config`` the main job's config (:data:`DEFAULT`) is used, wherever the command
runs (``experiments/<experiment>/config.toml`` link to these files).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from geounet.errors import MissingFileError

#: the main job: shallow water on HEALPix, the Multi-ResNet on face images with the latitude as an input
DEFAULT = "shallow_water_face"


def names() -> list[str]:
    """The packaged configs, by name."""
    return sorted(entry.name.removesuffix(".toml") for entry in resources.files(__package__).iterdir()
                  if entry.name.endswith(".toml"))


def resolve(config: str | Path | None) -> Path:
    """The config file of ``--config``: an existing file, else a packaged config by name
    (default :data:`DEFAULT`); anything else is an error naming both."""
    if config is None:
        config = DEFAULT
    if Path(config).is_file():
        return Path(config)
    if str(config) in names():
        return Path(str(resources.files(__package__) / f"{config}.toml"))
    raise MissingFileError(
        f"config file {config} does not exist, and it is not a packaged config ({', '.join(names())})"
    )
