"""capacity --output without matplotlib: one line naming the extra."""
import sys

import pytest

from vgpu_placement.cmd import capacity_plot
from vgpu_placement import exceptions
from vgpu_placement.placement import headroom


def test_without_matplotlib_the_error_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, 'matplotlib', None)
    gpu = headroom.Gpu('u', 'h_gpu', 'h', 'r',
                       {'CUSTOM_X': {'total': 2, 'reserved': 0}}, {},
                       frozenset())
    with pytest.raises(exceptions.VgpuPlacementError) as caught:
        capacity_plot.write(str(tmp_path / 'c.svg'), [gpu])
    assert "pip install 'vgpu-placement[plot]'" in str(caught.value)
    assert not (tmp_path / 'c.svg').exists()


def test_each_bar_splits_the_total_into_used_reserved_and_free():
    gpu = headroom.Gpu('u', 'h_gpu', 'h', 'r', {
        'CUSTOM_A': {'total': 8, 'reserved': 2},
        'CUSTOM_B': {'total': 4, 'reserved': 4}},
        {'CUSTOM_A': 3, 'CUSTOM_B': 1}, frozenset())
    assert capacity_plot.bars([gpu]) == [
        ('h  gpu  CUSTOM_A', 3, 2, 3, 8),
        # Usage above what is left (a class shrunk under its claims).
        ('h  gpu  CUSTOM_B', 1, 4, 0, 4)]
