import warnings

import numpy as np
import pytest
import torch

from geounet.geometry.boundary import AllBoundaryWarning, warn_if_all_boundary


def test_warns_only_when_a_whole_component_is_masked():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_if_all_boundary(np.array([True, False, True]))
        assert not warn_if_all_boundary(torch.tensor([True, False, True, False]), components=[0, 0, 1, 1])
    with pytest.warns(AllBoundaryWarning, match="every cell of the mesh touches the boundary"):
        assert warn_if_all_boundary(np.ones(4, dtype=bool))
    with pytest.warns(AllBoundaryWarning, match=r"1 of 2 components \(e.g. 1\)"):
        assert warn_if_all_boundary(np.array([True, False, True, True]), components=[0, 0, 1, 1])
    with pytest.raises(ValueError, match="components must label every cell"):
        warn_if_all_boundary(np.ones(3, dtype=bool), components=[0, 1])
