"""Mode shares and persistence of the compared data sets: run.sh's 32 x 32 forced-turbulence pairs
and the packaged FNO single-forcing data (``navier_stokes_square``, 64 x 64).

Reads them through the data cache (``data/``; generated if absent) and writes ``comparison_data.json``.

    PYTHONPATH=$PWD python experiments/square_forced_turbulence/comparison_data.py
"""

from __future__ import annotations

import json
from pathlib import Path

from measure_setting import describe  # this folder's script (its directory is on sys.path)

from geounet.datagen.navier_stokes import load_or_generate_forced_navier_stokes, load_or_generate_navier_stokes
from geounet.tasks import navier_stokes_square
from geounet.tasks.navier_stokes_forced import Config


def main() -> None:
    config = Config(resolution=32, num_train=64, num_test=32)
    result = {"command": "PYTHONPATH=$PWD python experiments/square_forced_turbulence/comparison_data.py"}
    for split in ("train", "test"):
        data = load_or_generate_forced_navier_stokes(config.cache_dir, config.solver_config(split))
        result[split] = describe(data["inputs"], data["targets"])
        fno = navier_stokes_square.Config()
        result[f"fno_single_forcing_{split}"] = describe(*load_or_generate_navier_stokes(fno.cache_dir,
                                                                                         fno.solver_config(split)))
    out = Path(__file__).parent / "comparison_data.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
