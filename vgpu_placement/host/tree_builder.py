"""The tree this host should have in Placement, from what its driver sees.

A TreeBuilder turns a driver's view into a provider_tree.DesiredTree:
virtual functions grouped under their GPU, each type's policy from the
config, each parent's capacity model (chosen from the config, or inferred,
with the counts the parent showed when it had no mdevs), and the mdevs the
ledger says are ours (the rest count as someone else's). It only reads;
the standalone Reporter and the Nova driver each write the tree their way.
"""
import logging

from vgpu_placement.conf import type_config
from vgpu_placement import exceptions
from vgpu_placement.host import empty_parents
from vgpu_placement.host import ledger as ledger_mod
from vgpu_placement.model import detect
from vgpu_placement.model import discovered
from vgpu_placement import once
from vgpu_placement.placement import consumers
from vgpu_placement.placement import provider_tree

LOG = logging.getLogger(__name__)


class TreeBuilder:
    """Builds the desired tree of ``conf``'s host as ``driver`` sees it."""

    def __init__(self, conf, driver):
        self.conf = conf
        self.driver = driver
        self.model_choices = type_config.load_model_choices(conf)
        self.empty_file = empty_parents.path_in(conf.state_path)
        self.say_once = once.SayOnce(LOG)
        self._ledger = None         # read only: which mdevs are ours
        self._policies = None       # (the host's shape, its policies)

    def discover(self, host=None):
        """The host as reported: SR-IOV virtual functions grouped.
        ``host``: a read of the driver's already made, used as it is."""
        return discovered.group_virtual_functions(
            self.driver.discover() if host is None else host)

    def _read_ledger(self, read, nothing):
        """``read(ledger)``, or ``nothing`` when the host has no ledger or
        it cannot be read (said once; opened again next time)."""
        try:
            if self._ledger is None:
                self._ledger = ledger_mod.open_existing(
                    ledger_mod.path_in(self.conf.state_path))
            return nothing if self._ledger is None else read(self._ledger)
        except exceptions.HostStateError as e:
            self._ledger = None
            self.say_once(logging.ERROR, ('ledger', str(e)),
                          '%s; every mdev counts as not ours meanwhile', e)
            return nothing

    def owned_mdevs(self):
        """UUIDs of the mdevs the ledger holds. A ledger that cannot be
        read makes every mdev count as someone else's: claims in flight
        are then counted in full (fewer offers, never too many)."""
        return self._read_ledger(ledger_mod.owned_mdevs, frozenset())

    def freed_notes(self):
        """The ledger's notes of mdevs freed for good (ledger.Freed);
        none when it cannot be read (their claims then count as waiting:
        fewer offers, never too many)."""
        return self._read_ledger(lambda ledger: ledger.freed(), [])

    def freed_claims(self, client, provider_of, stand_ins=dict):
        """{device: {type: n}}: claims Placement still holds whose mdevs
        were freed for good (placement.consumers.freed_claims; reads only
        while the ledger has such notes). Notes of claims gone are
        forgotten: the one write a TreeBuilder makes, to those notes."""
        notes = self.freed_notes()
        if not notes:
            return {}
        held, gone = consumers.freed_claims(client, notes, provider_of,
                                            stand_ins())
        if gone and self._ledger is not None:
            self._ledger.forget_freed(gone)
        return held

    def choose_model(self, parent, empty_seen):
        override = self.model_choices.get(
            parent.name, self.model_choices.get('*'))
        chosen, how = detect.choose_model(
            parent, override, empty_seen.get(parent.name),
            vendor=self.driver.model_detectors())
        # Said once per parent and model: how its costs were found.
        self.say_once(logging.INFO, ('model', parent.name, chosen.kind, how),
                      'capacity of %s: %s model (%s)', parent.name,
                      chosen.kind, how)
        return chosen

    def policies(self, snapshot):
        """{type id: TypePolicy} for the types ``snapshot`` shows: loaded
        again only when the host shows other types or parents than at the
        last load (the configuration is read once a process)."""
        key = (tuple(snapshot.type_ids()), frozenset(snapshot.unreadable),
               tuple((p.name, p.members) for p in snapshot.parents))
        if self._policies is None or self._policies[0] != key:
            self._policies = (key, type_config.load_policies(
                self.conf, snapshot, self.driver.vendor_param_keys))
        return self._policies[1]

    def desired_tree(self, snapshot, freed=None):
        """``freed``: {device: {type: claims whose mdev was freed for
        good}} (placement.consumers.freed_claims)."""
        policies = self.policies(snapshot)
        empty_seen = empty_parents.remember(self.empty_file, snapshot)
        return provider_tree.build_tree(
            self.conf.host, snapshot, policies,
            choose_model=lambda p: self.choose_model(p, empty_seen),
            counters=self.conf.capacity.shared_counters,
            owned=self.owned_mdevs(),
            claims_pay=self.conf.capacity.claims_pay_counters,
            freed=freed)
