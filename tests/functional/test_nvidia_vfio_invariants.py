"""Property tests of the NVIDIA vendor-specific VFIO profiles (equal-size,
mixed-size, MIG-backed) against the real embedded Placement: the machine of
test_capacity_invariants, with the truth of these GPUs.

safety     Placement never offers more of a type than the simulated GPU
           can create once every granted claim is made, in the order they
           were granted (mixed-size: every order must fit, so the offer is
           at most what this one order leaves);
tightness  equal offers where nothing granted is pending on the GPU (then
           no order is in question): the offer is exactly what the GPU
           shows, and the shared counters admit one of each type offered;
no late    every granted claim is realized, whichever order the host
failure    takes (hypothesis draws it), including bursts with the shared
           counters: of one type (equal-size), of any mix (MIG), and of
           different sizes made in a drawn order (mixed-size).
"""
import uuid

from hypothesis import settings
from hypothesis.stateful import invariant
from hypothesis.stateful import rule
from hypothesis import strategies as st
import pytest

from tests.functional import test_capacity_invariants as base
from vgpu_placement.drivers.nvidia import mixed as nv_mixed
from vgpu_placement.drivers.simulated import profile as sim_profile
from vgpu_placement.drivers.simulated import rules as sim_rules
from vgpu_placement import exceptions
from vgpu_placement.model import pool as pool_model
from vgpu_placement.placement import provider_tree


def gpu_truth(spec, vgpus, pending, type_spec):
    """What the simulated GPU still takes of type_spec once the granted
    claims (type ids, in order) are made after its vGPUs."""
    made = list(vgpus)
    for type_id in pending:
        where = sim_rules.vfio_where(spec, made, spec.type(type_id))
        if where is None:
            return 0
        made.append({'type': type_id, 'placement': where[0],
                     'gi': where[1]})
    n = sim_rules.count_creatable(spec, made, type_spec)
    return max(0, min(n, spec.vfs - len(made)))


class VfioHostUnderClaims(base.HostUnderClaims):

    def claim(self, type_id, with_counter):
        """A type no GPU has capacity for (MIG: no GPU instance of its
        profile) has no class in Placement yet: nothing to claim."""
        try:
            return super().claim(type_id, with_counter)
        except exceptions.PlacementError as e:
            if 'No such resource class' not in str(e):
                raise
            return None

    def free_target(self, device):
        spec = self.specs[device]
        busy = {m.parent for m in self.reporter.driver.discover().mdevs()}
        return next(vf for vf in sim_rules.vf_names(spec) if vf not in busy)

    def _vgpus(self, device):
        names = {n for n, _ in sim_rules.kernel_parents(self.specs[device])}
        state = self.reporter.driver._load_state()
        return [m for m in state['mdevs'] if m['parent'] in names]

    def _pending(self, device):
        return [t for d, t, m in self.granted.values()
                if d == device and m is None]

    @rule(data=st.data())
    def foreign_created(self, data):
        """Another owner makes a vGPU where nothing granted is waiting."""
        device = data.draw(st.sampled_from(sorted(self.specs)))
        spec = self.specs[device]
        if self._pending(device):
            return
        fits = [t.id for t in spec.types if gpu_truth(
            spec, self._vgpus(device), [], t)]
        if not fits:
            return
        mdev = str(uuid.uuid4())
        self.reporter.driver.create_mdev(
            self.free_target(device), data.draw(st.sampled_from(fits)), mdev)
        self.foreign[mdev] = device
        self.report()

    @rule(data=st.data(), size=st.integers(2, 6))
    def burst_with_counters(self, data, size):
        """Claims land before the host reports: one type on a mixed-size
        or equal-size GPU, any mix on a MIG one (true pools)."""
        counted = {t: c for c in self.desired.children if c.plan.counters
                   for t in c.plan.classes}
        if not counted:
            return
        first = data.draw(st.sampled_from(sorted(counted)))
        model = counted[first].plan.model
        mix = isinstance(model, pool_model.Pool) and not isinstance(
            model, nv_mixed.Mixed)
        got = [self.claim(first, True)] + [
            self.claim(data.draw(st.sampled_from(sorted(counted))) if mix
                       else first, True) for _ in range(size - 1)]
        for consumer in filter(None, got):
            self.realize(consumer)
        self.report()

    @rule(data=st.data(), size=st.integers(2, 6))
    def burst_of_sizes_mixed(self, data, size):
        """Claims of different sizes land on a mixed-size GPU before the
        host reports (several PUTs, no report between); the host then
        makes them in an order hypothesis draws: none may fail."""
        mixed = sorted(t for c in self.desired.children
                       if isinstance(c.plan.model, nv_mixed.Mixed)
                       for t in c.plan.classes)
        if not mixed:
            return
        got = [self.claim(data.draw(st.sampled_from(mixed)), True)
               for _ in range(size)]
        for consumer in data.draw(st.permutations(list(filter(None, got)))):
            self.realize(consumer)
        self.report()

    @invariant()
    def offers_are_safe_and_tight(self):
        view = dict(self.reporter.placement_view(refresh=False))
        for child in self.desired.children:
            spec = self.specs[child.device]
            vgpus, pending = self._vgpus(child.device), self._pending(
                child.device)
            inventories = view[child.name]['inventories']
            usages = view[child.name]['usages']
            for type_id, rc in child.plan.classes.items():
                # What a flavor of the type gets: its class and counters
                # where Placement carries the claims, else (mixed-size)
                # its class alone, which must then be safe by itself.
                request = child.plan.request(type_id)
                offered = provider_tree.grantable(
                    inventories, usages, request if
                    child.plan.counters_carry() else {rc: 1})
                real = gpu_truth(spec, vgpus, pending, spec.type(type_id))
                assert offered <= real, (
                    '%s %s: Placement offers %d, the GPU can create %d'
                    % (child.device, type_id, offered, real))
                if not pending:
                    assert offered == real, (
                        '%s %s: Placement offers %d of %d'
                        % (child.device, type_id, offered, real))
                if offered and not pending:
                    # A flavor asks for the counters too: they admit one.
                    assert provider_tree.grantable(
                        inventories, usages, request) >= 1, (
                        '%s %s: its counters close it' % (child.device,
                                                          type_id))


@pytest.fixture(autouse=True)
def _placement(placement_db, new_adapter):
    base.PLACEMENT_DB.update(path=placement_db, adapter=new_adapter)


@pytest.mark.parametrize('profile', [
    'nvidia-l40s-vfio', 'nvidia-l40s-vfio-mixed', 'nvidia-a10-vfio',
    'nvidia-a100-mig'])
def test_offers_stay_safe_and_tight(profile):
    machine = type('VfioHostUnderClaims_' + profile.replace('-', '_'),
                   (VfioHostUnderClaims,), {'profile': profile})
    machine.TestCase.settings = base.SETTINGS
    machine.TestCase().runTest()


def test_mixed_size_offers_are_safe_in_every_order():
    """The pure model on the example where order matters: with 16Q and 8Q
    granted, a second 16Q is safe only if the 8Q is not made first."""
    [spec], _ = sim_profile.load_profile(
        'etc/vgpu-placement/profiles/nvidia-l40s-vfio-mixed.yaml')
    shapes = {t.id: (t.placement_size, t.placement_ids) for t in spec.types}
    mixed = nv_mixed.Mixed({}, {}, shapes=shapes, existing={}, slots=32)
    q16, q8 = 'nvidia-1154', 'nvidia-1152'
    assert mixed.free_after({q16: 1}, [q16]) == {q16: 1}
    # 8Q first takes 0: the 16Qs then need 0 and 32; one only fits.
    assert gpu_truth(spec, [], [q8, q16], spec.type(q16)) == 0
    assert mixed.free_after({q16: 1, q8: 1}, [q16]) == {q16: 0}


def test_mixed_size_bursts_of_different_sizes_never_fail_late():
    """More runs of the mixed-size GPU, where a burst of different sizes
    can be granted that fits in no order or in some orders only."""
    machine = type('VfioHostUnderClaims_mixed_bursts', (VfioHostUnderClaims,),
                   {'profile': 'nvidia-l40s-vfio-mixed'})
    machine.TestCase.settings = settings(
        base.SETTINGS, max_examples=15)
    machine.TestCase().runTest()
