"""``geounet predict RUN_DIR --mesh FILE --out FILE.vtu``: a trained mesh model's prediction on a new mesh.

RUN_DIR is a run of the ``mesh_files`` task. FILE is a mesh file with the run's input
fields (``task.inputs``, as point data or triangle cell data like the training files,
or in a ``.npz`` beside it); the hierarchy of the run's recipe is built on it, and
``--out`` gets the mesh with the input fields and the predicted targets under their
names (in the training files' units), in the format of its suffix (``.vtu`` for ParaView).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from geounet.data.outputs import check_output, write_output
from geounet.errors import GeounetError
from geounet.inference.mesh_model import load_model

#: mesh formats that keep point and cell data (the inputs and the predictions)
MESH_FORMATS = (".vtu", ".vtk")


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Register ``geounet predict`` on the ``geounet`` command's sub-parsers."""
    parser = commands.add_parser("predict", help="a trained mesh model's prediction on a new mesh file",
                                 description=__doc__.split("\n\n", 1)[1])
    parser.add_argument("run_dir", type=Path, help="a run directory of `geounet train` with task.name = mesh_files")
    parser.add_argument("--mesh", required=True, type=Path, help="the mesh file with the run's input fields")
    parser.add_argument("--out", required=True, type=Path, help="the output mesh file, e.g. prediction.vtu")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.out.resolve() == args.mesh.resolve():
        raise GeounetError(f"--out {args.out} is the input mesh file; write the prediction to another file")
    check_output(args.out, MESH_FORMATS, overwrite=args.overwrite)
    trained = load_model(args.run_dir, args.device)
    write_output(args.out, lambda tmp: trained.predict_file(args.mesh, tmp))
    config = trained.config
    print(f"wrote {args.out}: {', '.join(config.targets)} predicted from {', '.join(config.inputs)} at the "
          f"{config.at}s of {args.mesh}")
    return 0
