"""Mode shares and persistence of the compared data sets: run.sh's 32 x 32 forced-turbulence pairs
and the packaged FNO single-forcing data (``navier_stokes_square``, 64 x 64); with options, other
forced-turbulence pair counts alone (converge.sh's data: ``--num-train 256 --num-test 64 --no-fno
--out converged/data.json``).

Reads them through the data cache (``data/``; generated if absent) and writes ``comparison_data.json``.

    PYTHONPATH=$PWD python experiments/square_forced_turbulence/comparison_data.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from measure_setting import describe  # this folder's script (its directory is on sys.path)

from geounet.datagen.navier_stokes import load_or_generate_forced_navier_stokes, load_or_generate_navier_stokes
from geounet.tasks import navier_stokes_square
from geounet.tasks.navier_stokes_forced import Config

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-train", type=int, default=64)
    parser.add_argument("--num-test", type=int, default=32)
    parser.add_argument("--no-fno", action="store_true", help="leave out FNO's single-forcing data")
    parser.add_argument("--out", type=Path, default=Path("comparison_data.json"), help="relative to this folder")
    args = parser.parse_args()
    config = Config(resolution=32, num_train=args.num_train, num_test=args.num_test)
    command = "PYTHONPATH=$PWD python experiments/square_forced_turbulence/comparison_data.py"
    if (args.num_train, args.num_test, args.no_fno, args.out) != (64, 32, False, Path("comparison_data.json")):
        command += f" --num-train {args.num_train} --num-test {args.num_test}"
        command += f"{' --no-fno' * args.no_fno} --out {args.out}"
    result = {"command": command}
    for split in ("train", "test"):
        data = load_or_generate_forced_navier_stokes(config.cache_dir, config.solver_config(split))
        result[split] = describe(data["inputs"], data["targets"])
        if not args.no_fno:
            fno = navier_stokes_square.Config()
            result[f"fno_single_forcing_{split}"] = describe(*load_or_generate_navier_stokes(fno.cache_dir,
                                                                                             fno.solver_config(split)))
    (HERE / args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
