"""A seeded random walk of creates and removes over the three parents.

After every step: the driver's snapshot and the kernel's own listing agree
with the test's count of the mdevs it made, the kernel's available counts
agree with the samples' capacity rules of
doc/source/reference/kernel-mdev.rst (mtty: shared ports; mbochs: shared
memory; mdpy: one instance counter), and a report leaves Placement
at existing + available for every type (with no write when nothing
changed). VGPU_KERNEL_SEED picks another walk; VGPU_KERNEL_STEPS its length.
"""
import os
import random
import uuid

import pytest

from tests.kernel.conftest import available
from tests.kernel.conftest import count_step
from tests.kernel.conftest import kernel_view
from vgpu_placement import exceptions

SEED = int(os.environ.get('VGPU_KERNEL_SEED', '20261124'))
STEPS = int(os.environ.get('VGPU_KERNEL_STEPS', '60'))

# Units each type takes from its parent's pool: see
# doc/source/reference/kernel-mdev.rst, 'The kernel's sample drivers'.
COST = {'mtty': {'mtty-1': 1, 'mtty-2': 2},
        'mbochs': {'mbochs-small': 4, 'mbochs-medium': 16,
                   'mbochs-large': 64},
        'mdpy': {'mdpy-vga': 1, 'mdpy-xga': 1, 'mdpy-hd': 1}}
# What a create gets when the pool is short.
FULL_ERROR = {'mtty': exceptions.NoCapacity,        # ENOSPC (driver probe)
              'mbochs': exceptions.NoCapacity,
              'mdpy': exceptions.TooManyInstances}  # EUSERS (core counter)


class Model:
    """The samples' capacity rules (kernel-mdev.rst), sized from the
    kernel at rest."""

    def __init__(self):
        self.pool = {
            parent: available(parent, min(costs, key=costs.get)) *
            min(costs.values()) for parent, costs in COST.items()}
        self.mdevs = {}                 # uuid -> (parent, type)

    def left(self, parent):
        return self.pool[parent] - sum(
            COST[p][t] for p, t in self.mdevs.values() if p == parent)

    def available(self):
        return {parent: {t: self.left(parent) // cost
                         for t, cost in sorted(costs.items())}
                for parent, costs in COST.items()}


def test_random_creates_and_removes_agree_with_the_kernel(
        driver, reporter, check_inventories):
    rng = random.Random(SEED)
    model = Model()
    reporter.report()
    check_inventories()
    outcomes = {}
    for step in range(STEPS):
        where = 'seed %d step %d' % (SEED, step)
        roll = rng.random()
        mine = sorted(model.mdevs)
        if mine and roll < 0.30:
            action = 'remove'
            u = rng.choice(mine)
            driver.remove_mdev(u)
            del model.mdevs[u]
        elif mine and roll < 0.37:
            action = 'duplicate'
            u = rng.choice(mine)
            parent = rng.choice(sorted(COST))
            type_id = rng.choice(sorted(COST[parent]))
            with pytest.raises(exceptions.MdevExists):
                driver.create_mdev(parent, type_id, u)
        elif roll < 0.45:
            action = 'remove-unknown'
            with pytest.raises(exceptions.MdevNotFound):
                driver.remove_mdev(str(uuid.uuid4()))
        else:
            parent = rng.choice(sorted(COST))
            type_id = rng.choice(sorted(COST[parent]))
            u = str(uuid.uuid4())
            if model.left(parent) >= COST[parent][type_id]:
                action = 'create'
                driver.create_mdev(parent, type_id, u)
                model.mdevs[u] = (parent, type_id)
            else:
                action = 'create-full'
                with pytest.raises(exceptions.NoCapacity) as err:
                    driver.create_mdev(parent, type_id, u)
                assert type(err.value) is FULL_ERROR[parent], where
        outcomes[action] = outcomes.get(action, 0) + 1

        view = kernel_view()
        snapshot = driver.discover()
        assert snapshot.warnings == (), where
        assert view['mdevs'] == model.mdevs, where
        assert {m.uuid: (m.parent, m.type_id)
                for m in snapshot.mdevs()} == model.mdevs, where
        assert view['available'] == model.available(), where
        assert {p.name: {t.id: t.available_instances for t in p.types}
                for p in snapshot.parents} == view['available'], where
        result = reporter.report()
        # The project's capacity model predicts what the kernel shows.
        assert result.disagreements == [], where
        if action not in ('create', 'remove'):
            assert result.requests.writes == 0, where
        # Placement itself every few steps, the reporter's copy otherwise.
        independent = step % 5 == 4 or step == STEPS - 1
        check_inventories(view, reporter=None if independent else reporter)
        count_step()
    # The walk went everywhere it should.
    assert set(outcomes) == {'create', 'remove', 'duplicate',
                             'remove-unknown', 'create-full'}, outcomes
