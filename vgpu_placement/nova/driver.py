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

The hooks only translate: what they decide (the reconcile schedule, the
tree reported, the reshape, adoption, which guests that left are freed)
is vgpu_placement.nova.node.ComputeNode's, which holds no Nova; what the
driver touches of Nova beyond public hooks is listed in
vgpu_placement.nova.compat.
"""
import contextlib
import json
import os
import threading

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
from vgpu_placement.host import mdev_manager
from vgpu_placement.host import tree_builder
from vgpu_placement.nova import compat
from vgpu_placement.nova import config
from vgpu_placement.nova import node as node_mod
from vgpu_placement.nova import release
from vgpu_placement.nova import tree as tree_mod
from vgpu_placement.nova import vf_migration
from vgpu_placement.placement import client as client_mod
from vgpu_placement.placement import consumers
from vgpu_placement.sysfs import read as sysfs_read

LOG = logging.getLogger(__name__)
CONF = nova.conf.CONF
config.register_nova_opts(CONF)


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
                              migrate_data_obj.LibvirtLiveMigrateData) + \
            compat.missing_names()
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
        self._node = None               # set up by init_host

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
        manager = mdev_manager.MdevManager(node, driver, tree, client,
                                           conf.state_path)
        self._node = node_mod.ComputeNode(
            manager, conf.agent.reconcile_interval,
            servers_here=self._servers_here,
            migrations=self._migrations_in_progress,
            assigned_mdevs=lambda instance: (
                self._get_all_assigned_mediated_devices(instance)))
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
        driver = self._node.manager.driver
        for vf in driver.discover().parents:
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
    def vgpu_node(self):
        """The project's node.ComputeNode: what this driver decides."""
        if self._node is None:
            self._vp_setup()
        return self._node

    @property
    def vgpu_host(self):
        """The project's mdev_manager.MdevManager of this compute node."""
        return self.vgpu_node.manager

    def init_host(self, host):
        super().init_host(host)
        self._vp_setup()
        self._node.start()

    # -- reporting --------------------------------------------------------
    def update_provider_tree(self, provider_tree, nodename,
                             allocations=None):
        super().update_provider_tree(provider_tree, nodename,
                                     allocations=allocations)
        try:
            self.vgpu_node.report(provider_tree, nodename, allocations)
        except node_mod.ReshapeNeeded:
            raise exception.ReshapeNeeded()

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

    def _allocate_mdevs(self, allocations):
        if not allocations:
            return []
        consumer = getattr(self._local, 'consumer', None)
        if consumer is None:
            raise exception.NovaException(
                'vgpu-placement: mdevs asked for without an instance')
        try:
            return self.vgpu_node.realize(consumer, allocations)
        except exceptions.VgpuPlacementError as e:
            raise exception.ComputeResourcesUnavailable(
                reason='vGPU of %s: %s' % (consumer, e))

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
    def _guest_add_mdevs(self, guest, chosen_mdevs):
        """Nova's mdev hostdevs, except for a vGPU that is its VF: that
        VF as a PCI hostdev, managed='no' (it stays bound to the vendor's
        driver), as the project's driver writes it (Driver.hostdev_xml).
        Every path that builds a guest comes here: spawn, hard reboot,
        resize and cold migration, evacuate, unshelve, a host's start."""
        vf_of = {u: vf for vf, u in self.vgpu_node.vf_vgpus().items()}
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
                          self.vgpu_node.vf_vgpus(instance.uuid).values()})
            return found
        vfs = self.vgpu_node.vf_vgpus()
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
        self.vgpu_node.free(instance.uuid)

    def destroy(self, context, instance, network_info, *args, **kwargs):
        keeping = getattr(self._local, 'keeping', None) == instance.uuid
        if not keeping:
            # Its guest XML is gone once Nova has destroyed it.
            self.vgpu_node.adopt(instance)
        try:
            return super().destroy(context, instance, network_info, *args,
                                   **kwargs)
        finally:
            if not keeping:
                self._free(instance)

    def migrate_disk_and_power_off(self, context, instance, *args,
                                   **kwargs):
        self.vgpu_node.adopt(instance)       # freed on this host at confirm
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
        vfs = self.vgpu_node.vf_records(instance.uuid)
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
        self.vgpu_node.adopt(instance)      # freed here at its cleanup
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
            done = self.vgpu_host.realize(instance.uuid,
                                          consumers.resources_of(allocs or {}))
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
            if instance.uuid in self.vgpu_node.departed():
                self.vgpu_node.free_departed(instance.uuid)

    def rollback_live_migration_at_destination(self, context, instance,
                                               *args, **kwargs):
        try:
            return super().rollback_live_migration_at_destination(
                context, instance, *args, **kwargs)
        finally:
            self._free(instance)
