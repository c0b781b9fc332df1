"""The reusable fixtures work as another project would use them."""
import os

from tests.functional.conftest import placement_ini
from tests.functional.conftest import tree_in_placement
from vgpu_placement import fixtures as vp_fixtures


def test_a_simulated_host_reports_and_cleans_its_state_up(placement_db,
                                                          placement):
    with vp_fixtures.SimulatedHost(placement_ini(placement_db),
                                   'kernel-samples') as simulated:
        simulated.reporter.report()
        state = simulated.state_path
        assert os.path.isdir(state)
        tree = tree_in_placement(placement, simulated.name)
        assert sorted(tree) == ['%s_%s' % (simulated.name, n) for n in (
            'mbochs_mbochs', 'mdpy_mdpy', 'mtty_mtty')]
    assert not os.path.exists(state)
