"""Fixtures of the forecast tests: synthetic files in the test's temporary directory."""

from __future__ import annotations

import pytest
from forecast_files import era5_like


@pytest.fixture
def latlon_file(tmp_path):
    path = tmp_path / "era5_like.nc"
    era5_like().to_netcdf(path)
    return path

