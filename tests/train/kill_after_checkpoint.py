"""Run the ``geounet`` command and SIGKILL it right after it has written the checkpoint of
step K: a crash at a known point (not a race), for the resume tests.

    python tests/train/kill_after_checkpoint.py K train --config ... --out RUN

Every :func:`geounet.train.loop.fit` call of the command gets one more callback,
:class:`KillAfterCheckpoint`; the command's modules are imported after the patch, so they
call the patched ``fit``.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from pathlib import Path

import geounet.train.loop as loop
from geounet.train.callbacks import Callback


class KillAfterCheckpoint(Callback):
    """SIGKILLs the process once the checkpoint of step ``step`` is on disk."""

    def __init__(self, step: int):
        self.step = step

    def on_checkpoint_written(self, path: Path, step: int) -> None:
        if step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def main(argv: list[str]) -> int:
    kill_at, command = int(argv[0]), argv[1:]
    fit = loop.fit
    if any(name in sys.modules for name in ("geounet.experiment.runner", "geounet.experiment.diffusion")):
        raise RuntimeError("a runner imported fit before the patch; import it later")

    @functools.wraps(fit)
    def fit_killed_after_checkpoint(*args, callbacks=(), **kwargs):
        return fit(*args, callbacks=[*callbacks, KillAfterCheckpoint(kill_at)], **kwargs)

    loop.fit = fit_killed_after_checkpoint
    from geounet.cli import main as cli_main

    return cli_main(command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
