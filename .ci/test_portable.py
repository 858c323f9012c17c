"""Run the test suite on other CPU code paths than this machine's own (``make test-portable``).

A test that assumes bit-exact floating point across CPUs passes on the machine it was written
on and fails on another (a different vendor, instruction set, BLAS kernel or thread count).
This script runs the suite once with every numerical library on a different path:

* ATen (torch's CPU kernels): ``ATEN_CPU_CAPABILITY=default``, the non-vectorised kernels;
* MKL (torch's BLAS / LAPACK): ``MKL_ENABLE_INSTRUCTIONS=AVX2`` where MKL runs AVX-512 here (it
  reproduced the sliced-Wasserstein failure of the issue on an Intel machine), ``SSE4_2`` where it
  runs AVX2. On a CPU that is not Intel's (an AMD EPYC, say) MKL runs its generic kernels
  ("Intel(R) Architecture processors" in MKL_VERBOSE) whatever the setting: that is already
  another path than an Intel CPU's, and the run goes on with MKL left as it is;
* oneDNN (torch's convolutions): ``ONEDNN_MAX_CPU_ISA=AVX2`` or ``SSE41`` alike;
* OpenBLAS (numpy's and scipy's BLAS): ``OPENBLAS_CORETYPE=Haswell`` where it runs AVX-512
  kernels here, ``Nehalem`` otherwise;
* threads: ``OMP_NUM_THREADS=1`` (2 on a one-core machine);
* Inductor (``torch.compile``): a cache directory of its own (``TORCHINDUCTOR_CACHE_DIR``, a fresh
  temporary one), so the compiled tests build their kernels on this path. Inductor's cache does
  not key on ``ATEN_CPU_CAPABILITY``: after ``make test`` it handed this run the vectorised
  run's generated C++, which then failed to compile here ("'at::vec' has not been declared").

Settings already in the environment are kept. Each library is probed in a subprocess before
and after (``get_cpu_capability()``, MKL_VERBOSE, oneDNN's verbose ISA line, threadpoolctl),
and the script stops if a setting did not change what it should: e.g. a torch that ignored
``ATEN_CPU_CAPABILITY`` would make this a second, useless run of ``make test``.

    .venv/bin/python .ci/test_portable.py [pytest arguments]
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile

PROBE = r"""
import json, torch, numpy, scipy.linalg
from threadpoolctl import threadpool_info
a = torch.randn(64, 64, dtype=torch.float64)
a @ a  # MKL_VERBOSE prints the instruction set of MKL's kernels
with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
    torch.nn.functional.conv2d(torch.randn(4, 3, 64, 64), torch.randn(8, 3, 3, 3))  # oneDNN prints its ISA
blas = sorted({str(i.get("architecture")) for i in threadpool_info() if i.get("internal_api") == "openblas"})
print("PROBE " + json.dumps({"aten": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
                             "openblas": ", ".join(blas) or None}), flush=True)
"""

AVX512_OPENBLAS = ("SkylakeX", "Cooperlake", "SapphireRapids")
#: MKL_VERBOSE's name of MKL's kernels on CPUs that are not Intel's; no setting moves MKL off them
GENERIC_MKL = "Intel(R) Architecture processors"


def probe(env: dict[str, str]) -> dict[str, object]:
    """The code paths a Python process started with ``env`` takes: ATen capability, MKL's and
    oneDNN's instruction sets, OpenBLAS's kernel family and torch's thread count."""
    done = subprocess.run([sys.executable, "-c", PROBE], env={**env, "MKL_VERBOSE": "1"}, capture_output=True,
                          text=True, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("PROBE ")), None)
    if done.returncode != 0 or line is None:
        sys.exit(f"test_portable: the probe failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    found = json.loads(line.removeprefix("PROBE "))
    mkl = re.search(r"MKL_VERBOSE oneMKL .*? for Intel\(R\) 64 architecture (.*?), Lnx", done.stdout)
    found["mkl"] = mkl.group(1) if mkl else None  # None: torch does not use MKL here
    onednn = re.search(r"onednn_verbose,.*?,isa:(.*)", done.stdout)
    found["onednn"] = onednn.group(1).strip() if onednn else None
    return found


def width(isa: object) -> str:
    """The vector width of an instruction-set description of MKL or oneDNN (what must change)."""
    for tokens, bits in ((("AVX-512", "AVX10", "AMX"), "512-bit"), (("AVX2", "AVX"), "256-bit"), (("SSE",), "128-bit")):
        if any(token in str(isa) for token in tokens):
            return bits
    return str(isa)


def alternatives(native: dict[str, object]) -> dict[str, str]:
    """Environment settings that move every library off its native path."""
    return {
        "ATEN_CPU_CAPABILITY": "default",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2" if width(native["mkl"]) == "512-bit" else "SSE4_2",
        "ONEDNN_MAX_CPU_ISA": "AVX2" if width(native["onednn"]) == "512-bit" else "SSE41",
        "OPENBLAS_CORETYPE": "Haswell" if str(native["openblas"]) in AVX512_OPENBLAS else "Nehalem",
        "OMP_NUM_THREADS": "1" if int(native["threads"]) > 1 else "2",
    }


VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "OPENBLAS_CORETYPE",
             "OMP_NUM_THREADS")


def main(pytest_args: list[str]) -> None:
    base = {k: v for k, v in os.environ.items() if k not in ("MKL_VERBOSE", "ONEDNN_VERBOSE", "DNNL_VERBOSE")}
    native = probe({k: v for k, v in base.items() if k not in VARIABLES})
    settings = {k: base.get(k, v) for k, v in alternatives(native).items()}
    env = {**base, **settings, "TORCHINDUCTOR_CACHE_DIR": tempfile.mkdtemp(prefix="geounet-portable-inductor-")}
    other = probe(env)
    rows = [("ATen kernels", "aten", "ATEN_CPU_CAPABILITY"), ("MKL", "mkl", "MKL_ENABLE_INSTRUCTIONS"),
            ("oneDNN", "onednn", "ONEDNN_MAX_CPU_ISA"), ("OpenBLAS", "openblas", "OPENBLAS_CORETYPE"),
            ("threads", "threads", "OMP_NUM_THREADS")]
    print("test_portable: the suite on other CPU code paths")
    unchanged = []
    for name, key, var in rows:
        print(f"  {name:13s} {str(native[key]):48.48s} -> {str(other[key]):48.48s} ({var}={settings[var]})")
        if key == "mkl" and native[key] == GENERIC_MKL:
            print(f"  {'':13s} (MKL runs its generic kernels on this CPU, not an Intel one's: already another path)")
            continue
        if native[key] is not None and (width(native[key]) == width(other[key]) if key in ("mkl", "onednn")
                                        else native[key] == other[key]):
            unchanged.append(f"{var}={settings[var]} left {name} on {native[key]}")
    if settings["ATEN_CPU_CAPABILITY"].lower() == "default" and other["aten"] != "DEFAULT":
        unchanged.append(f"ATEN_CPU_CAPABILITY=default gave {other['aten']}")
    if unchanged:
        sys.exit("test_portable: a setting did not change its code path: " + "; ".join(unchanged))
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "pytest", *pytest_args], env)


if __name__ == "__main__":
    main(sys.argv[1:])
