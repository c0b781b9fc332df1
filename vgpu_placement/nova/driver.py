"""nova-compute's libvirt driver with the project's vGPUs.

``[DEFAULT] compute_driver = vgpu_placement.VgpuPlacementLibvirtDriver``
(published as ``nova.virt.vgpu_placement``, see vgpu_placement.nova) and
``[vgpu_placement] config_file`` in nova.conf. Nova's own vGPU support
(``[devices] enabled_mdev_types``) must be off: the project reports and
creates every vGPU of the host.

What it changes in Nova's LibvirtDriver (31 to 34), and nothing else:

* ``update_provider_tree``: Nova's tree, then the project's children
  (inventories with the capacity model's ``reserved``, traits, counter
  classes), written by Nova's report client;
* the mdevs of a server come from ``mdev_manager.MdevManager.realize``
  (UUIDs derived from the instance, two-phase ledger, per-parent locks,
  vendor parameters): on spawn (boot, rebuild, evacuate, unshelve), on the
  destination of a resize or cold migration (finish_migration) and of a
  live migration (before it starts, check_source_migrate_data_at_dest);
* a vGPU that is its virtual function (NVIDIA's vendor-specific VFIO:
  the driver's ``guest_gets_parent``) reaches the guest as that VF, an
  unmanaged PCI hostdev (``_guest_add_mdevs``), and is found there again
  when Nova defines the guest anew (``_get_all_assigned_mediated_devices``);
  such a server live-migrates where both hosts mark its type
  ``live_migratable`` (vgpu_placement.nova.vf_migration), else the
  pre-check refuses; nova-compute does not start while ``[pci]
  device_spec`` hands such a VF to Nova's own PCI passthrough;
* ``MdevManager.free`` when the guest leaves this host for good: destroy
  (delete, shelve offload, evacuated instance cleaned up, revert on the
  destination, failed live migration on the destination), confirm of a
  resize on the source, a live migration's end on the source. Reboots
  (soft, hard, power off/on) keep them; a hard reboot makes sure they are
  there first;
* ``init_host``: after Nova's, ``MdevManager.reconcile`` brings back the
  mdevs a host reboot lost, with the same UUIDs, before Nova resumes the
  guests; it runs again from the resource tracker's periodic report every
  ``[agent] reconcile_interval`` of the project's file (an mdev left by a
  move that failed half-way is removed then), and at the next one after
  a reconcile that failed (host.schedule, as the agent does);
* taking over a host from stock Nova's vGPU support (vgpu_placement.nova.
  takeover): its allocations move to the project's classes through Nova's
  reshape at the first start, and the mdevs its servers use are adopted
  into the ledger (at start, on each report, and before a server is
  deleted or moved away), never recreated.
"""
import contextlib
import json
import os
import threading
import time

from oslo_log import log as logging

import nova.conf
from nova import context as nova_context
from nova import exception
from nova import objects
from nova.objects import migrate_data as migrate_data_obj
from nova.pci import whitelist
from nova.scheduler.client import report
from nova import version
from nova.virt.libvirt import config as vconfig
from nova.virt.libvirt import driver as libvirt_driver
from nova.virt.libvirt import host as libvirt_host

from vgpu_placement import drivers
from vgpu_placement.drivers.mdev import libvirt as lv_driver
from vgpu_placement import exceptions
from vgpu_placement.host import ledger as ledger_mod
from vgpu_placement.host import mdev_manager
from vgpu_placement.host import schedule
from vgpu_placement.host import tree_builder
from vgpu_placement.nova import compat
from vgpu_placement.nova import config
from vgpu_placement.nova import release
from vgpu_placement.nova import takeover
from vgpu_placement.nova import tree as tree_mod
from vgpu_placement.nova import vf_migration
from vgpu_placement.placement import client as client_mod
from vgpu_placement.placement import provider_tree as ptree
from vgpu_placement.placement import traits as traits_mod
from vgpu_placement.sysfs import read as sysfs_read

LOG = logging.getLogger(__name__)
CONF = nova.conf.CONF
config.register_nova_opts(CONF)


def _resources(allocations):
    """Nova's {rp: {'resources': {class: n}, ...}} -> {rp: {class: n}}."""
    return {rp: dict(a.get('resources', {}))
            for rp, a in (allocations or {}).items()}


class _ReportClientAdapter:
    """What PlacementClient asks of a keystoneauth Adapter, answered by
    Nova's report client (its session, auth, endpoint and retries)."""

    # Nova's report client retries as nova.conf's [placement] says (not
    # at all by default): PlacementClient adds no retry of its own.
    connect_retries = 0

    def request(self, path, method, microversion=None, raise_exc=False,
                json=None, connect_retries=None):
        client = report.report_client_singleton()
        if method == 'GET':
            return client.get(path, version=microversion)
        if method == 'DELETE':
            return client.delete(path, version=microversion)
        return getattr(client, method.lower())(path, json,
                                               version=microversion)

    def get_endpoint(self):
        return None


class VgpuPlacementLibvirtDriver(libvirt_driver.LibvirtDriver):
    """Nova's libvirt driver; vGPUs by vgpu-placement (module docstring)."""

    def __init__(self, virtapi, read_only=False):
        refused = release.refusal(version.version_string())
        if refused:
            raise exception.InvalidConfiguration(refused)
        gone = compat.missing(libvirt_driver.LibvirtDriver, libvirt_host.Host,
                              migrate_data_obj.LibvirtLiveMigrateData)
        if gone:
            raise exception.InvalidConfiguration(
                'vgpu-placement: Nova %s lacks %s, which the compute driver '
                'relies on (vgpu_placement/nova/compat.py)' % (
                    version.version_string(), ', '.join(gone)))
        if CONF.devices.enabled_mdev_types:
            raise exception.InvalidConfiguration(
                '[devices] enabled_mdev_types is %s: with compute_driver %s '
                'vgpu-placement reports and creates the vGPUs of this host; '
                'unset it (see the README, "With Nova")' % (
                    ','.join(CONF.devices.enabled_mdev_types),
                    CONF.compute_driver))
        super().__init__(virtapi, read_only)
        self._local = threading.local()
        self._vp = None                 # set up by init_host
        # Whether the resource tracker has asked for the tree yet: a
        # reshape can only be asked for at its first (start-up) call.
        self._reported = False
        self._clock = time.monotonic
        # (foreign mdevs, managed providers) of the last adoption pass
        # over every guest that found nothing to adopt.
        self._nothing_to_adopt = None
        self._reconcile_schedule = None     # set up by init_host

    # -- setting up -----------------------------------------------------
    def _vp_setup(self):
        """The project's conf, driver, tree and MdevManager, on Nova's libvirt
        connection (init_host has connected)."""
        node = self._host.get_hostname()
        try:
            conf = config.load(CONF.vgpu_placement.config_file, node)
            if conf.driver == 'libvirt':
                # Looked up at each call: Nova reconnects on its own.
                driver = lv_driver.LibvirtDriver(
                    conf, get_connection=lambda: self._host.get_connection(),
                    libvirt_module=libvirt_host.libvirt)
            else:
                driver = drivers.load_driver(conf.driver, conf)
        except exceptions.VgpuPlacementError as e:
            raise exception.InvalidConfiguration(str(e))
        builder = tree_builder.TreeBuilder(conf, driver)
        client = client_mod.PlacementClient(_ReportClientAdapter())
        tree = tree_mod.NovaTree(builder, client, node,
                                 migrations=self._migrations_in_progress)
        self._vp = mdev_manager.MdevManager(node, driver, tree, client,
                                            conf.state_path)
        self._reconcile_schedule = schedule.ReconcileSchedule(
            conf.agent.reconcile_interval, lambda: self._clock())
        self._one_owner_per_vf(conf)
        LOG.info('vgpu-placement: driver %s, state in %s, host %s',
                 conf.driver, conf.state_path, node)

    def _one_owner_per_vf(self, conf):
        """Refuse to start while Nova's ``[pci] device_spec`` gives Nova's
        PCI passthrough a virtual function whose vGPUs the project makes
        (vendor-specific VFIO): both would hand it to guests. A VF's
        vendor and product ids are read from sysfs; where they cannot be
        (a simulated host), only specs naming its address (or its GPU's)
        can match it."""
        specs = whitelist.Whitelist(CONF.pci.device_spec).specs
        if not specs:
            return
        driver = self._vp.driver
        for vf in self._vp.driver.discover().parents:
            if not (vf.physfn and driver.guest_gets_parent(vf.name)):
                continue
            device = {'address': vf.name, 'parent_addr': vf.physfn,
                      'vendor_id': self._pci_id(conf, vf.name, 'vendor'),
                      'product_id': self._pci_id(conf, vf.name, 'device')}
            for spec in specs:
                if spec.match(device):
                    raise exception.InvalidConfiguration(
                        '[pci] device_spec %s gives Nova\'s PCI passthrough '
                        'the virtual function %s, whose vGPUs vgpu-placement '
                        'makes (GPU %s): a VF has one owner; take it out of '
                        '[pci] device_spec' % (
                            json.dumps(spec.dev_spec_conf, sort_keys=True),
                            vf.name, vf.physfn))

    @staticmethod
    def _pci_id(conf, address, name):
        """'10de' from <sysfs>/bus/pci/devices/<address>/<name>, or ''."""
        try:
            value = sysfs_read.read_text(os.path.join(
                conf.sysfs.root, 'bus', 'pci', 'devices', address, name))
        except sysfs_read.Unreadable:
            return ''
        return value.strip().lower().removeprefix('0x')

    def _migrations_in_progress(self):
        """{migration uuid: instance uuid} of the moves in progress on
        this node (as source or destination)."""
        context = nova_context.get_admin_context()
        node = self._host.get_hostname()
        return {m.uuid: m.instance_uuid for m in
                objects.MigrationList.get_in_progress_by_host_and_node(
                    context, CONF.host, node)}

    def _servers_here(self):
        """Instance uuids Nova places on this host now, or moving here or
        away (a move in progress): the only consumers whose allocations a
        reconcile may realize. A build that never reached this host (its
        claim made, its request lost with a restart) is not one: Nova
        errors it out, and an mdev made for it would hold capacity for
        nothing until the server is deleted."""
        context = nova_context.get_admin_context()
        return {i.uuid for i in objects.InstanceList.get_by_host(
            context, CONF.host, expected_attrs=[])} | set(
                self._migrations_in_progress().values())

    @property
    def vgpu_host(self):
        """The project's mdev_manager.MdevManager of this compute node."""
        if self._vp is None:
            self._vp_setup()
        return self._vp

    def init_host(self, host):
        super().init_host(host)
        self._vp_setup()
        # Guests that left by live migration before a cleanup that never
        # came (nova-compute stopped between the two): their migration
        # may still read as running, which would keep their mdevs here.
        for consumer in self._departed():
            self._free_departed(consumer)
        self._reconcile()

    def _departed(self):
        """Consumers whose guest left this host (the ledger's notes); none
        while the ledger cannot be used (said; nothing is freed then)."""
        try:
            return self.vgpu_host.ledger.departed()
        except exceptions.VgpuPlacementError as e:
            LOG.error('vgpu-placement: guests that left this host not '
                      'looked up: %s', e)
            return []

    def _free_departed(self, consumer):
        """Free the mdevs of a consumer whose guest left this host. The
        note stays (MdevManager.reconcile makes none for it) until the
        consumer holds nothing here or comes back."""
        try:
            self.vgpu_host.free(consumer)
        except exceptions.VgpuPlacementError as e:
            LOG.error('vgpu-placement: mdevs of %s, which left this host, '
                      'not freed: %s', consumer, e)

    def _reconcile(self):
        tree = self.vgpu_host.tree
        try:
            if tree.refresh() is None:
                LOG.info('vgpu-placement: no provider tree for %s in '
                         'Placement yet: nothing to reconcile',
                         tree.root_name)
                # Done, with nothing to do (a new host): not retried at
                # the next report as a failure would be.
                self._reconcile_schedule.finished()
                return
            # Adopted first: reconcile would otherwise make new mdevs for
            # servers that use stock Nova's.
            self._adopt()
            summary = self.vgpu_host.reconcile(
                realize_for=self._servers_here().__contains__)
        except exceptions.VgpuPlacementError as e:
            # Nova starts anyway; a guest whose mdev is missing fails to
            # start with libvirt's "mediated device ... not found".
            LOG.error('vgpu-placement: reconcile failed (tried again at '
                      'the next report): %s', e)
            return
        self._reconcile_schedule.finished()
        done = {k: v for k, v in summary.items() if v}
        if done:
            LOG.info('vgpu-placement: reconciled: %s', done)

    # -- reporting --------------------------------------------------------
    def update_provider_tree(self, provider_tree, nodename,
                             allocations=None):
        super().update_provider_tree(provider_tree, nodename,
                                     allocations=allocations)
        vp = self.vgpu_host
        if allocations is None and self._reconcile_schedule is not None \
                and self._reconcile_schedule.due():
            # Before the host is read: what it changes is in this report.
            self._reconcile()
        builder = vp.tree.builder
        snapshot = builder.discover()
        desired = builder.desired_tree(
            snapshot, self._freed_claims(provider_tree, nodename))
        if allocations is None:
            vp.tree.refresh()
        cached = vp.tree.children()
        # Children of ours by name that we do not report yet: stock
        # Nova's, on a host it is taking over from Nova.
        taken = {provider_tree.data(c.name).uuid: c for c in desired.children
                 if provider_tree.exists(c.name) and traits_mod.MANAGED
                 not in provider_tree.data(c.name).traits}
        first, self._reported = not self._reported, True
        if allocations is None and first and any(
                takeover.foreign_in_use(c, cached[c.name][1].usages)
                for c in taken.values() if c.name in cached):
            LOG.info('vgpu-placement: stock Nova\'s vGPU allocations on %s: '
                     'asking for a reshape into the project\'s classes',
                     ', '.join(sorted(c.name for c in taken.values())))
            raise exception.ReshapeNeeded()
        if allocations is not None and taken:
            self._reshape(allocations, taken, snapshot)

        def usages_of(name, rp_uuid):
            if allocations is not None:
                return tree_mod.usages_from_allocations(
                    allocations, [rp_uuid])[rp_uuid]
            child = desired.child(name)
            if child is not None:
                return vp.tree.usages(child)
            return vp.tree.retired_usages(rp_uuid)

        tree_mod.put_tree(provider_tree, nodename, desired, usages_of)
        if allocations is None:
            self._adopt(snapshot=snapshot)

    def _freed_claims(self, provider_tree, nodename):
        """{device: {type: n}}: claims Placement still holds whose mdev
        was freed for good (this report runs before Nova deletes a
        server's allocations): on an equal-size GPU they keep no size
        open. Reads only while the ledger has such notes."""
        def provider_of(device):
            name = ptree.provider_name(nodename, device)
            return provider_tree.data(name).uuid if provider_tree.exists(
                name) else None
        vp = self.vgpu_host
        return vp.tree.builder.freed_claims(
            vp.client, provider_of, self._migrations_in_progress)

    def _reshape(self, allocations, taken, snapshot):
        """Stock Nova's vGPU allocations on ``taken`` ({rp uuid:
        DesiredProvider}) moved to the project's classes, in place."""
        mdevs = {m.uuid: (p.name, m.type_id) for p in snapshot.parents
                 for m in p.mdevs}
        moved, left = takeover.reshape(
            allocations, taken, self._get_all_assigned_mediated_devices(),
            mdevs, self._migrations_in_progress())
        LOG.info('vgpu-placement: reshape moves %d vGPU allocations of '
                 'stock Nova into the project\'s classes', len(moved))
        for consumer, rp_uuid, rc, n in left:
            LOG.warning('vgpu-placement: %d %s of %s on %s not moved: no mdev '
                        'of its guest there accounts for it; kept, closed, '
                        'until it is released', n, rc, consumer,
                        taken[rp_uuid].name)

    def _adopt(self, instance=None, snapshot=None):
        """Adopt into the ledger the mdevs stock Nova made that servers of
        this host use (their guest XML names them), as the vGPUs their
        allocations ask for (MdevManager.adopt); ``instance``: that
        server's only. A host with no mdev outside the ledger costs one
        host read; the guests are read only when that set of mdevs, or
        the providers we manage, changed since a pass that adopted
        nothing (stock Nova leaves unused mdevs behind: they would make
        every report read every guest)."""
        vp = self.vgpu_host
        try:
            snapshot = snapshot or vp.tree.builder.discover()
            foreign = {m.uuid for m in snapshot.mdevs()} - \
                ledger_mod.owned_mdevs(vp.ledger)
        except exceptions.VgpuPlacementError as e:
            LOG.warning('vgpu-placement: no adoption of stock Nova\'s mdevs '
                        'now: %s', e)
            return
        looked_at = (frozenset(foreign), frozenset(vp.tree.managed()))
        if not foreign or (instance is None and
                           looked_at == self._nothing_to_adopt):
            return
        by_server = {}
        for mdev_uuid, server in self._get_all_assigned_mediated_devices(
                instance).items():
            if mdev_uuid in foreign:
                by_server.setdefault(server, []).append(mdev_uuid)
        adopted = failed = False
        for server, uuids in sorted(by_server.items()):
            try:
                adopted = bool(vp.adopt(server, uuids)) or adopted
            except exceptions.VgpuPlacementError as e:
                failed = True
                LOG.warning('vgpu-placement: mdevs %s of %s not adopted: %s',
                            ', '.join(sorted(uuids)), server, e)
        if instance is None and not (adopted or failed):
            self._nothing_to_adopt = looked_at

    # -- realize ------------------------------------------------------------
    @contextlib.contextmanager
    def _consumer(self, instance):
        """Tells _allocate_mdevs (which Nova calls with allocations only)
        whose mdevs these are."""
        self._local.consumer = instance.uuid
        try:
            yield
        finally:
            self._local.consumer = None

    def _realize(self, consumer, allocations):
        """The consumer's mdev UUIDs on this host ([] when its
        allocations hold no vGPU of ours)."""
        resources = _resources(allocations)
        is_ours = self.vgpu_host.tree.is_ours()
        if not any(is_ours(rp) and any(r.values())
                   for rp, r in resources.items()):
            return []
        try:
            done = self.vgpu_host.realize(consumer, resources)
        except exceptions.VgpuPlacementError as e:
            raise exception.ComputeResourcesUnavailable(
                reason='vGPU of %s: %s' % (consumer, e))
        return [r.uuid for r in done]

    def _allocate_mdevs(self, allocations):
        if not allocations:
            return []
        consumer = getattr(self._local, 'consumer', None)
        if consumer is None:
            raise exception.NovaException(
                'vgpu-placement: mdevs asked for without an instance')
        return self._realize(consumer, allocations)

    def spawn(self, context, instance, *args, **kwargs):
        with self._consumer(instance):
            return super().spawn(context, instance, *args, **kwargs)

    def finish_migration(self, context, migration, instance, *args,
                         **kwargs):
        with self._consumer(instance):
            return super().finish_migration(context, migration, instance,
                                            *args, **kwargs)

    def _hard_reboot(self, context, instance, *args, **kwargs):
        # After a host reboot reconcile has brought them back; if not (it
        # failed), realize them again before the guest is redefined.
        if self.vgpu_host.ledger.records(instance.uuid):
            try:
                self.vgpu_host.realize(instance.uuid)
            except exceptions.VgpuPlacementError as e:
                LOG.warning('vgpu-placement: mdevs of %s before the hard '
                            'reboot: %s', instance.uuid, e)
        # Nova's hard reboot destroys the guest (keeping disks) and
        # defines it again: its mdevs stay.
        self._local.keeping = instance.uuid
        try:
            with self._consumer(instance):
                return super()._hard_reboot(context, instance, *args,
                                            **kwargs)
        finally:
            self._local.keeping = None

    # -- the guest's devices ------------------------------------------------
    def _vf_records(self, consumer=None):
        """The ledger's records (of ``consumer``, or all) of vGPUs that are
        their virtual function (NVIDIA's vendor-specific VFIO: Driver.
        guest_gets_parent): the guest gets the VF itself."""
        driver = self.vgpu_host.driver
        return [r for r in self.vgpu_host.ledger.records(consumer)
                if driver.guest_gets_parent(r.parent)]

    def _vf_vgpus(self, consumer=None):
        """{VF address: vGPU uuid} of _vf_records."""
        return {r.parent: r.uuid for r in self._vf_records(consumer)}

    def _guest_add_mdevs(self, guest, chosen_mdevs):
        """Nova's mdev hostdevs, except for a vGPU that is its VF: that
        VF as a PCI hostdev, managed='no' (it stays bound to the vendor's
        driver), as the project's driver writes it (Driver.hostdev_xml).
        Every path that builds a guest comes here: spawn, hard reboot,
        resize and cold migration, evacuate, unshelve, a host's start."""
        vf_of = {u: vf for vf, u in self._vf_vgpus().items()}
        mdevs = []
        for mdev_uuid in chosen_mdevs:
            vf = vf_of.get(mdev_uuid)
            if vf is None:
                mdevs.append(mdev_uuid)
                continue
            dev = vconfig.LibvirtConfigGuestHostdevPCI()
            dev.parse_str(self.vgpu_host.driver.hostdev_xml(mdev_uuid, vf))
            guest.add_device(dev)
        super()._guest_add_mdevs(guest, mdevs)

    def _get_all_assigned_mediated_devices(self, instance=None):
        """Nova's {mdev uuid: instance uuid}, and the vGPUs that are their
        VF: Nova reads this to keep a guest's vGPUs when it defines the
        guest again (hard reboot, a host's start, rescue, a resize's
        revert). For one instance, its vGPUs as the ledger has them now
        (after a host reboot, reconcile may have made one on another VF
        than the guest's old definition names); for all, the VFs the
        guests are defined with."""
        found = super()._get_all_assigned_mediated_devices(instance)
        if instance is not None:
            found.update({u: instance.uuid for u in
                          self._vf_vgpus(instance.uuid).values()})
            return found
        vfs = self._vf_vgpus()
        if not vfs:
            return found
        for guest in self._host.list_guests(only_running=False):
            for dev in guest.get_config().devices:
                if isinstance(dev, vconfig.LibvirtConfigGuestHostdevPCI):
                    vf = '%04x:%02x:%02x.%x' % tuple(
                        int(part, 16) for part in (
                            dev.domain, dev.bus, dev.slot, dev.function))
                    if vf in vfs:
                        found[vfs[vf]] = guest.uuid
        return found

    # -- free -----------------------------------------------------------------
    def _free(self, instance):
        try:
            freed = self.vgpu_host.free(instance.uuid)
        except exceptions.VgpuPlacementError as e:
            # Kept in the ledger: reconcile removes it once the consumer
            # holds no allocation here.
            LOG.error('vgpu-placement: mdevs of %s not freed: %s',
                      instance.uuid, e)
            return
        if freed:
            LOG.info('vgpu-placement: freed mdevs %s of %s',
                     ', '.join(freed), instance.uuid)

    def destroy(self, context, instance, network_info, *args, **kwargs):
        keeping = getattr(self._local, 'keeping', None) == instance.uuid
        if not keeping:
            # Its guest XML is gone once Nova has destroyed it.
            self._adopt(instance)
        try:
            return super().destroy(context, instance, network_info, *args,
                                   **kwargs)
        finally:
            if not keeping:
                self._free(instance)

    def migrate_disk_and_power_off(self, context, instance, *args,
                                   **kwargs):
        self._adopt(instance)       # freed on this host at confirm
        return super().migrate_disk_and_power_off(context, instance, *args,
                                                  **kwargs)

    def confirm_migration(self, context, migration, instance, network_info):
        super().confirm_migration(context, migration, instance,
                                  network_info)
        if migration.source_compute != migration.dest_compute:
            self._free(instance)

    # -- live migration ---------------------------------------------------
    def _vf_refusal(self, consumer, type_ids, policies, side):
        """nova.vf_migration.refusal for this host."""
        return vf_migration.refusal(
            consumer, type_ids, policies, self._host.has_min_version(
                lv_ver=vf_migration.MIN_LIBVIRT,
                hv_ver=vf_migration.MIN_QEMU,
                hv_type=libvirt_host.HV_DRIVER_QEMU), side)

    def check_can_live_migrate_source(self, context, instance,
                                      dest_check_data, *args, **kwargs):
        vfs = self._vf_records(instance.uuid)
        if vfs:
            reason = self._vf_refusal(
                instance.uuid, [r.type for r in vfs],
                self.vgpu_host.tree.reading().policies, 'source')
            if reason:
                raise exception.MigrationPreCheckError(reason=reason)
        data = super().check_can_live_migrate_source(
            context, instance, dest_check_data, *args, **kwargs)
        if vfs:
            # Nova's own look-up finds no mdev of these UUIDs: the
            # destination is told each VF and its type (vf_migration).
            types = dict(data.source_mdev_types) if (
                'source_mdev_types' in data) else {}
            types.update({r.parent: r.type for r in vfs})
            data.source_mdev_types = types
        return data

    def live_migration(self, context, instance, *args, **kwargs):
        self._adopt(instance)       # freed on this host at its cleanup
        return super().live_migration(context, instance, *args, **kwargs)

    def check_source_migrate_data_at_dest(self, ctxt, instance,
                                          migrate_data, migration, limits,
                                          allocs):
        src_types = migrate_data.source_mdev_types if (
            'source_mdev_types' in migrate_data) else None
        if not src_types:
            return super().check_source_migrate_data_at_dest(
                ctxt, instance, migrate_data, migration, limits, allocs)
        # Nova's check, against the types this host reports.
        reading = self.vgpu_host.tree.reading()
        here = {t for child in reading.desired.children
                for t in child.plan.classes}
        if not set(src_types.values()) <= here:
            raise exception.MigrationPreCheckError(reason=(
                'Unable to migrate %s: source mdev types %s are not '
                'reported by this compute: %s' % (
                    instance.uuid, sorted(set(src_types.values())),
                    sorted(here))))
        reason = self._vf_refusal(
            instance.uuid, [t for key, t in src_types.items()
                            if vf_migration.is_vf_key(key)],
            reading.policies, 'destination')
        if reason:
            raise exception.MigrationPreCheckError(reason=reason)
        try:
            done = self.vgpu_host.realize(instance.uuid, _resources(allocs))
        except exceptions.VgpuPlacementError as e:
            raise exception.MigrationPreCheckError(
                reason='vGPU of %s: %s' % (instance.uuid, e))
        paired = vf_migration.pair(src_types, done,
                                   self.vgpu_host.driver.guest_gets_parent)
        if paired is None:
            self._free(instance)
            raise exception.MigrationPreCheckError(reason=(
                'Unable to migrate %s: source vGPUs %s cannot all be '
                'matched by type here: %s' % (
                    instance.uuid, sorted(src_types.items()),
                    [(r.uuid, r.parent, r.type_id) for r in done])))
        migrate_data.target_mdevs, vfs = paired
        if vfs:
            # The manager set it (Nova's own PCI claims) before this call.
            vfs.update(migrate_data.pci_dev_map_src_dst if (
                'pci_dev_map_src_dst' in migrate_data) else {})
            migrate_data.pci_dev_map_src_dst = vfs
        return migrate_data

    def post_live_migration_at_source(self, context, instance,
                                      network_info):
        super().post_live_migration_at_source(context, instance,
                                              network_info)
        # Freed by the cleanup() that follows on the source, once the
        # domain is gone (a guest still holding an mdev makes it busy);
        # in the ledger, so that a restart before that cleanup frees them
        # at start (init_host).
        self.vgpu_host.ledger.note_departed(instance.uuid)

    def cleanup(self, context, instance, network_info, *args, **kwargs):
        try:
            return super().cleanup(context, instance, network_info, *args,
                                   **kwargs)
        finally:
            if instance.uuid in self._departed():
                self._free_departed(instance.uuid)

    def rollback_live_migration_at_destination(self, context, instance,
                                               *args, **kwargs):
        try:
            return super().rollback_live_migration_at_destination(
                context, instance, *args, **kwargs)
        finally:
            self._free(instance)
