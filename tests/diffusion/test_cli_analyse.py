"""``geounet analyse noise`` on a tiny Navier-Stokes study: JSON, PNGs, and one-line errors."""

from __future__ import annotations

import json

from geounet.cli import main

CONFIG = """
[analysis]
noise_draws = 16
cache_dir = "{cache}"

[[study]]
name = "ns"
source = "navier_stokes"
resolution = 16
num_samples = 4
num_levels = 4
"""


def test_noise_analysis_writes_measured_and_predicted_decays(tmp_path, capsys):
    config = tmp_path / "noise.toml"
    config.write_text(CONFIG.format(cache=tmp_path / "data"))
    assert main(["analyse", "noise", "--config", str(config), "--out", str(tmp_path / "out")]) == 0
    result = json.loads((tmp_path / "out" / "noise_analysis.json").read_text())["studies"]["ns"]
    assert result["dimensions"] == [4, 16, 64, 256]
    assert len(result["decay_measured"]) == 3 and len(result["decay_spectrum"]) == 3
    assert all(abs(m / a - 1) < 0.5 for m, a in zip(result["noise_sampled"], result["noise"], strict=True))
    assert (tmp_path / "out" / "ns.png").stat().st_size > 10_000
    assert (tmp_path / "out" / "decays.png").stat().st_size > 5_000
    assert "ns: beta =" in capsys.readouterr().out


def test_bad_noise_configs_are_one_line_errors(tmp_path, capsys):
    config = tmp_path / "noise.toml"
    config.write_text(CONFIG.format(cache=tmp_path) + "colour = 3\n")
    assert main(["analyse", "noise", "--config", str(config)]) == 2
    assert "unknown keys ['colour'] for source 'navier_stokes'" in capsys.readouterr().err
    config.write_text("[analysis]\nnoise_draws = 4\n")
    assert main(["analyse", "noise", "--config", str(config)]) == 2
    assert "at least one [[study]]" in capsys.readouterr().err
    assert main(["analyse", "noise", "--config", str(tmp_path / "missing.toml")]) == 2
