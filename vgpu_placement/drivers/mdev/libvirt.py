"""Mediated devices through libvirt's node-device API (libvirt-python).

Discovery lists the devices with the ``mdev_types`` capability (parents)
and those with the ``mdev`` capability, and reads each one's XML; create
and remove go through libvirt as Nova 34.0.0's ``_create_mdev`` does:
create the device from XML, define it (persistent, kept by mdevctl) and
set it to autostart, so the host's mdevs come back after a reboot the way
libvirt/mdevctl bring them back. Remove is destroy, then undefine.

Parents are named as the kernel names them (``0000:84:00.0``, ``mtty``),
as the sysfs driver does, so that providers, the ledger and the config
read the same whichever driver found them; libvirt's names
(``pci_0000_84_00_0``) stay inside this module.

What libvirt does not carry is read from sysfs, read-only, through the
sysfs driver's checked reader: a type's ``description`` (the capacity
model reads NVIDIA's framebuffer size and GVT-g's pools in it; libvirt's
``<type>`` has only name, deviceAPI and availableInstances), and NVIDIA's
``vgpu_params``, written as the sysfs driver writes them (libvirt's
``<attr>`` elements are mdevctl attributes written only when the device
starts, whereas the Driver interface sets parameters on an mdev that
exists). The host's boot id is ``[sysfs] boot_id_file``: the driver
manages the host it runs on, whatever ``[libvirt] connection_uri`` says.

Defined-but-inactive mdevs (persisted, not started) are not counted on
their parent: they hold no capacity in the kernel, whose
availableInstances still offers their room. They are kept in
``inactive_mdevs`` after each discover, and create_mdev of the same UUID,
parent and type starts the existing definition rather than defining a
second one.

Errors are the typed MdevError subclasses: the errno mdevctl reports
("(os error 28)", or the strerror text alone), mdevctl's own refusals
("No available instances"), then libvirt's error codes; anything else
is an MdevError quoting libvirt.
"""
import logging
import os
import re
import xml.etree.ElementTree as ElementTree

from vgpu_placement.drivers import base
from vgpu_placement.drivers.mdev import sysfs
from vgpu_placement.drivers.nvidia import models as nvidia_models
from vgpu_placement import exceptions
from vgpu_placement.model import discovered
from vgpu_placement.model import parse
from vgpu_placement.sysfs import paths as sysfs_paths
from vgpu_placement.sysfs import read as sysfs_read

LOG = logging.getLogger(__name__)

DEFAULT_URI = 'qemu:///system'
# libvirt prints no DTD and no entity in a node device's XML: one that has
# them is refused before the parser sees it (no external entity, no
# entity expansion), and so is one larger than any real one.
_MAX_XML = 1 << 20
_REFUSED_XML = ('<!DOCTYPE', '<!ENTITY')
# mdevctl's errors end with Rust's io::Error: "... (os error 28)".
_OS_ERROR_RE = re.compile(r'\(os error (\d+)\)')
# mdevctl's own refusals (mdevctl/src/mdev.rs, create()), which libvirt
# passes on after "Unable to start mediated device: ".
_MDEVCTL_REFUSALS = (
    (re.compile(r'No available instances of', re.I), exceptions.NoCapacity,
     None),
    (re.compile(r'Device (already exists|exists under different parent|'
                r'exists with different type)', re.I),
     exceptions.MdevExists, None),
    (re.compile(r'unable to find parent device|is not currently registered '
                r'for mdev support', re.I), exceptions.ParentGone, None),
    (re.compile(r'does not support mdev type', re.I),
     exceptions.InvalidMdevRequest, 'the parent does not offer this type'),
    # libvirt's nodeDeviceDestroy: the vfio group is open (a guest has it).
    (re.compile(r'device in use', re.I), exceptions.MdevBusy,
     'in use by a guest'),
)
# The errnos with a typed error (exceptions.py), recognised by strerror;
# not ENOENT, whose text libvirt also prints for a socket it cannot reach.
_TYPED_ERRNOS = tuple(cls.errno for cls in (
    exceptions.InvalidMdevRequest, exceptions.MdevExists,
    exceptions.NoCapacity, exceptions.TooManyInstances,
    exceptions.ParentGone, exceptions.MdevBusy))
_NODEDEV_PCI_RE = re.compile(
    r'^pci_([0-9a-f]{4})_([0-9a-f]{2})_([0-9a-f]{2})_([0-7])$')


def load_libvirt():
    """The libvirt module, imported only when this driver is loaded."""
    try:
        import libvirt
    except ImportError as e:
        raise exceptions.ConfigError(
            '[DEFAULT] driver',
            'driver libvirt needs the libvirt Python bindings (%s)' % e,
            'install the libvirt-python package (pip install libvirt-python, '
            'or the distribution\'s python3-libvirt)')
    return libvirt


# -- XML (pure) ---------------------------------------------------------------

class BadXML(ValueError):
    """Node device XML that cannot be believed; the message says why."""


def parse_xml(text):
    """The root element of a node device's XML, parsed with no DTD and no
    entities."""
    if not isinstance(text, str):
        raise BadXML('not text: %r' % type(text).__name__)
    if len(text) > _MAX_XML:
        raise BadXML('%d characters, more than a node device has'
                     % len(text))
    if any(marker in text for marker in _REFUSED_XML):
        raise BadXML('holds a DTD or an entity declaration')
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as e:
        raise BadXML('not XML: %s' % e)
    if root.tag != 'device':
        raise BadXML('root element <%s>, not <device>' % root.tag)
    return root


def _pci_address(element, attrs=False):
    """'0000:84:00.0' from a <capability type='pci'> (decimal child
    elements) or an <address> (hex attributes), or BadXML."""
    fields = ('domain', 'bus', 'slot', 'function')
    try:
        if attrs:
            values = [int(element.get(f), 16) for f in fields]
        else:
            values = [int(element.findtext(f).strip(), 10) for f in fields]
    except (TypeError, ValueError, AttributeError):
        raise BadXML('a PCI address without valid domain, bus, slot and '
                     'function')
    address = '%04x:%02x:%02x.%x' % tuple(values)
    if not discovered.is_pci_address(address):
        raise BadXML('PCI address %s out of range' % address)
    return address


def _count(text, what):
    value = parse.count(text)
    if value is None:
        raise BadXML('%s holds %r, not a count' % (what,
                                                   (text or '').strip()[:40]))
    return value


def kernel_name(root):
    """The kernel's name of a node device: the PCI address of a PCI
    device, else its sysfs directory's name; BadXML if neither."""
    pci = root.find("capability[@type='pci']")
    if pci is not None:
        name = _pci_address(pci)
    else:
        path = (root.findtext('path') or '').strip()
        name = os.path.basename(path.rstrip('/'))
    if not discovered.is_valid_name(name):
        raise BadXML('no usable kernel name (path %r)'
                     % root.findtext('path'))
    return name


def parse_parent(text):
    """A mediated-device parent's XML, as a dict: nodedev (libvirt's
    name), name (the kernel's), path (sysfs path, or None), physfn (PCI
    address of its SR-IOV physical function, or None), types (list of
    dicts: id, name, device_api, available_instances) and skipped (one
    line per type that could not be read: (type id, problem)).

    BadXML if the device itself cannot be read.
    """
    root = parse_xml(text)
    nodedev = (root.findtext('name') or '').strip()
    if not nodedev:
        raise BadXML('a device without a <name>')
    physfn = None
    address = root.find("capability[@type='pci']/capability"
                        "[@type='phys_function']/address")
    if address is not None:
        physfn = _pci_address(address, attrs=True)
    types, skipped, seen = [], [], set()
    # <capability type='mdev_types'> sits inside the pci, css or
    # ap_matrix capability, or at the top for other parents: found
    # wherever it is.
    for cap in root.iter('capability'):
        if cap.get('type') != 'mdev_types':
            continue
        for element in cap.findall('type'):
            type_id = element.get('id')
            if not discovered.is_valid_name(type_id):
                skipped.append((type_id, 'not a type id'))
                continue
            if type_id in seen:
                raise BadXML('type %s listed twice' % type_id)
            seen.add(type_id)
            try:
                device_api = (element.findtext('deviceAPI') or '').strip()
                if not device_api:
                    raise BadXML('no deviceAPI')
                available = _count(element.findtext('availableInstances'),
                                   'availableInstances')
            except BadXML as e:
                skipped.append((type_id, str(e)))
                continue
            types.append({
                'id': type_id,
                'name': (element.findtext('name') or '').strip() or type_id,
                'device_api': device_api,
                'available_instances': available})
    path = (root.findtext('path') or '').strip() or None
    return {'nodedev': nodedev, 'name': kernel_name(root), 'path': path,
            'physfn': physfn, 'types': sorted(types, key=lambda t: t['id']),
            'skipped': skipped}


def _uuid_from_nodedev(nodedev):
    """libvirt names an mdev mdev_<uuid with underscores>[_<parent>]:
    the UUID of that name, for libvirt older than 7.3 (no <uuid>)."""
    parts = nodedev.split('_')
    if len(parts) < 6 or parts[0] != 'mdev':
        raise BadXML('no <uuid> and name %r is not mdev_<uuid>' % nodedev)
    try:
        return discovered.canonical_uuid('-'.join(parts[1:6]))
    except ValueError:
        raise BadXML('no <uuid> and name %r is not mdev_<uuid>' % nodedev)


def parse_mdev(text):
    """A mediated device's XML, as a dict: nodedev, uuid, type_id,
    parent (libvirt's name of the parent) and parent_addr (the kernel's,
    printed by libvirt 9.x and later, else None). BadXML if unusable."""
    root = parse_xml(text)
    nodedev = (root.findtext('name') or '').strip()
    cap = root.find("capability[@type='mdev']")
    if cap is None:
        raise BadXML('no mdev capability')
    type_element = cap.find('type')
    type_id = type_element.get('id') if type_element is not None else None
    if not discovered.is_valid_name(type_id):
        raise BadXML('type %r is not a type id' % (type_id,))
    uuid_text = (cap.findtext('uuid') or '').strip()
    if uuid_text:
        try:
            mdev_uuid = discovered.canonical_uuid(uuid_text)
        except ValueError:
            raise BadXML('uuid %r is not a UUID' % uuid_text[:40])
    else:
        mdev_uuid = _uuid_from_nodedev(nodedev)
    parent_addr = (cap.findtext('parent_addr') or '').strip() or None
    if parent_addr is not None and not discovered.is_valid_name(parent_addr):
        raise BadXML('parent_addr %r is not a device name' % parent_addr)
    return {'nodedev': nodedev, 'uuid': mdev_uuid, 'type_id': type_id,
            'parent': (root.findtext('parent') or '').strip() or None,
            'parent_addr': parent_addr}


def mdev_xml(parent_nodedev, type_id, mdev_uuid):
    """The XML Nova 34 gives nodeDeviceCreateXML/DefineXML for an mdev."""
    device = ElementTree.Element('device')
    ElementTree.SubElement(device, 'parent').text = parent_nodedev
    cap = ElementTree.SubElement(device, 'capability', type='mdev')
    ElementTree.SubElement(cap, 'type', id=type_id)
    ElementTree.SubElement(cap, 'uuid').text = mdev_uuid
    return ElementTree.tostring(device, encoding='unicode')


def kernel_name_of_nodedev(nodedev):
    """0000:84:00.0 for pci_0000_84_00_0; None for other names."""
    match = _NODEDEV_PCI_RE.fullmatch(nodedev or '')
    return '%s:%s:%s.%s' % match.groups() if match else None


# -- errors (pure) ------------------------------------------------------------

def mdev_error(libvirt_module, err, action, target):
    """The typed MdevError for a libvirtError raised by ``action``."""
    message = ' '.join(str(err.get_error_message() or err).split())
    for pattern, cls, detail in _MDEVCTL_REFUSALS:
        if pattern.search(message):
            return cls(action, target, detail or 'libvirt: ' + message)
    match = _OS_ERROR_RE.search(message)
    number = int(match.group(1)) if match else next(
        # mdevctl before 1.0 (a shell script) printed strerror alone.
        (n for n in _TYPED_ERRNOS if os.strerror(n) in message), None)
    if number is not None:
        return exceptions.mdev_error_from_errno(
            OSError(number, os.strerror(number)), action, target)
    code = err.get_error_code()

    def is_code(name):
        value = getattr(libvirt_module, name, None)
        return value is not None and code == value

    if is_code('VIR_ERR_NO_NODE_DEVICE') and action == 'remove':
        return exceptions.MdevNotFound(action, target)
    if any(is_code(n) for n in (
            'VIR_ERR_XML_ERROR', 'VIR_ERR_XML_DETAIL', 'VIR_ERR_INVALID_ARG')):
        return exceptions.InvalidMdevRequest(action, target,
                                             'libvirt: ' + message)
    return exceptions.MdevError(action, target, 'libvirt: %s (error code %s)'
                                % (message, code))


def _no_credentials(credentials, _opaque):
    """libvirt's auth callback: 0 when nothing is asked, else -1."""
    return 0 if not credentials else -1


# -- the driver ---------------------------------------------------------------

class LibvirtDriver(nvidia_models.NvidiaGpus, base.Driver):
    """Mediated devices through libvirt at ``[libvirt] connection_uri``."""

    def __init__(self, conf, get_connection=None, libvirt_module=None):
        """``get_connection`` and ``libvirt_module``: a caller that has a
        libvirt connection already (nova-compute: its Host.get_connection
        and the libvirt module it imported) hands them in, so no second
        connection is opened."""
        super().__init__(conf)
        self._libvirt = libvirt_module or load_libvirt()
        self.uri = conf.libvirt.connection_uri or DEFAULT_URI
        self._conn = None
        self._get_connection = get_connection
        # Only for what libvirt cannot carry: descriptions, vgpu_params.
        self._sysfs = sysfs.SysfsDriver(conf)
        self.inactive_mdevs = ()

    # -- connection -----------------------------------------------------------
    def _connection(self):
        if self._get_connection is not None:
            return self._get_connection()
        lv, conn = self._libvirt, self._conn
        if conn is not None:
            try:
                if conn.isAlive():
                    return conn
            except lv.libvirtError:
                pass
            LOG.warning('libvirt connection to %s lost: reconnecting',
                        self.uri)
        # As Nova's Host._connect: openAuth with a callback that supplies
        # no credential (a URI needing a password is refused, not asked).
        auth = [[lv.VIR_CRED_AUTHNAME, lv.VIR_CRED_ECHOPROMPT,
                 lv.VIR_CRED_REALM, lv.VIR_CRED_PASSPHRASE,
                 lv.VIR_CRED_NOECHOPROMPT, lv.VIR_CRED_EXTERNAL],
                _no_credentials, None]
        try:
            self._conn = lv.openAuth(self.uri, auth, 0)
        except lv.libvirtError as e:
            raise exceptions.HostStateError(
                'cannot connect to libvirt at [libvirt] connection_uri %s: '
                '%s; is libvirtd (or virtnodedevd) running?'
                % (self.uri, ' '.join(str(e).split())))
        return self._conn

    def _list(self, flag_name, what):
        flag = getattr(self._libvirt, flag_name)
        try:
            return self._connection().listAllDevices(flag) or []
        except self._libvirt.libvirtError as e:
            raise exceptions.HostStateError(
                'libvirt at %s cannot list %s: %s'
                % (self.uri, what, ' '.join(str(e).split())))

    def _xml(self, device):
        """The device's XML; None if it vanished since it was listed."""
        try:
            return device.XMLDesc(0)
        except self._libvirt.libvirtError as e:
            if e.get_error_code() == getattr(
                    self._libvirt, 'VIR_ERR_NO_NODE_DEVICE', None):
                return None
            raise

    @staticmethod
    def _is_active(device):
        # isActive() came with libvirt 7.8; before it no mdev was defined
        # without being started by libvirt.
        is_active = getattr(device, 'isActive', None)
        return True if is_active is None else bool(is_active())

    # -- discovery ------------------------------------------------------------
    def discover(self):
        warnings, unreadable = [], set()
        parents = self._read_parents(warnings, unreadable)
        by_nodedev = {p['nodedev']: p for p in parents}
        inactive = []
        for device, info in self._read_mdevs(warnings, unreadable, parents):
            parent = by_nodedev.get(info['parent'])
            if parent is None and info['parent_addr']:
                parent = next((p for p in parents
                               if p['name'] == info['parent_addr']), None)
            if not self._is_active(device):
                inactive.append(discovered.Mdev(
                    info['uuid'], info['type_id'],
                    parent['name'] if parent else
                    info['parent_addr'] or info['parent']))
                continue
            if parent is None:
                warnings.append('skipped mdev %s: its parent %s is not a '
                                'device libvirt lists with mdev types'
                                % (info['uuid'], info['parent']))
                continue
            parent['mdevs'].append(discovered.Mdev(
                info['uuid'], info['type_id'], parent['name']))
        self._note_inactive(inactive)
        for text in warnings:
            LOG.warning('libvirt: %s', text)
        snapshot_parents = tuple(sorted((discovered.ParentDevice(
            name=p['name'],
            types=tuple(discovered.MdevType(
                t['id'], t['name'], t['description'], t['device_api'],
                t['available_instances']) for t in p['types']),
            mdevs=tuple(sorted(p['mdevs'], key=lambda m: m.uuid)),
            physfn=p['physfn']) for p in parents), key=lambda p: p.name))
        return discovered.HostSnapshot(parents=snapshot_parents,
                                       warnings=tuple(warnings),
                                       unreadable=frozenset(unreadable))

    def _read_parents(self, warnings, unreadable):
        parents, names = [], set()
        for device in self._list(
                'VIR_CONNECT_LIST_NODE_DEVICES_CAP_MDEV_TYPES',
                'mdev-capable devices'):
            nodedev = device.name()
            try:
                text = self._xml(device)
                if text is None:
                    warnings.append('skipped parent %s: it vanished'
                                    % nodedev)
                    continue
                info = parse_parent(text)
            except (self._libvirt.libvirtError, BadXML) as e:
                # Known by its name alone: reported empty and unreadable,
                # so that nothing is concluded from what is missing.
                name = kernel_name_of_nodedev(nodedev)
                warnings.append('parent %s not read: %s' % (
                    nodedev, ' '.join(str(e).split())))
                if name is None:
                    continue
                info = {'nodedev': nodedev, 'name': name, 'path': None,
                        'physfn': None, 'types': [], 'skipped': []}
                unreadable.add(name)
            if info['name'] in names:
                warnings.append('skipped parent %s: a second device named '
                                '%s' % (nodedev, info['name']))
                unreadable.add(info['name'])
                continue
            names.add(info['name'])
            for type_id, problem in info['skipped']:
                warnings.append('skipped type %r on %s: %s'
                                % (type_id, info['name'], problem))
                if discovered.is_valid_name(type_id):
                    unreadable.add(info['name'])
            for t in info['types']:
                t['description'] = self._description(info, t['id'], warnings)
            info['mdevs'] = []
            parents.append(info)
        return parents

    def _read_mdevs(self, warnings, unreadable, parents):
        """(device, parsed XML) of every mdev libvirt lists, active or
        defined; an mdev that cannot be read makes its parent unreadable
        (all parents when its parent cannot be told either)."""
        for device in self._list('VIR_CONNECT_LIST_NODE_DEVICES_CAP_MDEV',
                                 'mediated devices'):
            nodedev = device.name()
            try:
                text = self._xml(device)
                if text is None:
                    continue        # removed since it was listed
                yield device, parse_mdev(text)
            except (self._libvirt.libvirtError, BadXML) as e:
                warnings.append('mdev %s not read: %s' % (
                    nodedev, ' '.join(str(e).split())))
                try:
                    parent_nodedev = device.parent()
                except self._libvirt.libvirtError:
                    parent_nodedev = None
                owners = [p['name'] for p in parents
                          if p['nodedev'] == parent_nodedev]
                unreadable.update(owners or [p['name'] for p in parents])

    def _description(self, info, type_id, warnings):
        """The type's sysfs description ('' when there is none): libvirt
        does not print it. Read under [sysfs] root, which stands for
        /sys in the path libvirt prints."""
        path = info['path']
        if not path or not path.startswith('/sys/'):
            return ''
        root = os.path.realpath(self.conf.sysfs.root)
        type_dir = os.path.realpath(os.path.join(
            root, path[len('/sys/'):], 'mdev_supported_types', type_id))
        if not sysfs_paths.inside(type_dir, root):
            warnings.append('description of %s on %s: %s leads outside '
                            '[sysfs] root' % (type_id, info['name'], path))
            return ''
        try:
            return sysfs_read.read_text(
                os.path.join(type_dir, 'description')).strip()
        except sysfs_read.Unreadable as e:
            if not e.absent:
                warnings.append('description of %s on %s: %s'
                                % (type_id, info['name'], e))
            return ''

    def _note_inactive(self, inactive):
        inactive = tuple(sorted(inactive, key=lambda m: m.uuid))
        if inactive != self.inactive_mdevs and inactive:
            LOG.info('libvirt: %d defined mdev(s) not started, not counted '
                     'on their parents: %s', len(inactive), ', '.join(
                         '%s (%s on %s)' % (m.uuid, m.type_id, m.parent)
                         for m in inactive))
        self.inactive_mdevs = inactive

    # -- changes --------------------------------------------------------------
    def _parent_nodedev(self, parent, action, target):
        """libvirt's name of the parent the kernel calls ``parent``."""
        for device in self._list(
                'VIR_CONNECT_LIST_NODE_DEVICES_CAP_MDEV_TYPES',
                'mdev-capable devices'):
            try:
                text = self._xml(device)
                if text is not None and kernel_name(
                        parse_xml(text)) == parent:
                    return device.name()
            except (self._libvirt.libvirtError, BadXML):
                if kernel_name_of_nodedev(device.name()) == parent:
                    return device.name()
        raise exceptions.ParentGone(action, target, 'libvirt lists no '
                                    'mdev-capable device %s' % parent)

    def _find_mdevs(self, mdev_uuid):
        """[(device, parsed XML)] of the mdevs with this UUID, active or
        defined (mdevctl allows one definition per parent)."""
        found = []
        for device in self._list('VIR_CONNECT_LIST_NODE_DEVICES_CAP_MDEV',
                                 'mediated devices'):
            try:
                text = self._xml(device)
                info = parse_mdev(text) if text is not None else None
            except (self._libvirt.libvirtError, BadXML):
                continue
            if info and info['uuid'] == mdev_uuid:
                found.append((device, info))
        return found

    def create_mdev(self, parent, type_id, mdev_uuid):
        mdev_uuid = base.checked_create(parent, type_id, mdev_uuid)
        action, target = 'create', '%s of type %s on %s' % (
            mdev_uuid, type_id, parent)
        lv = self._libvirt
        nodedev = self._parent_nodedev(parent, action, target)
        for device, info in self._find_mdevs(mdev_uuid):
            if self._is_active(device):
                raise exceptions.MdevExists(action, target)
            if info['parent'] != nodedev or info['type_id'] != type_id:
                raise exceptions.MdevExists(
                    action, target, 'libvirt has it defined (not started) '
                    'as %s on %s; undefine it first' % (
                        info['type_id'], info['parent']))
            # Ours from before a reboot whose autostart did not happen.
            try:
                device.create(0)
            except lv.libvirtError as e:
                raise mdev_error(lv, e, action, target)
            self._autostart(device, mdev_uuid)
            return
        xml = mdev_xml(nodedev, type_id, mdev_uuid)
        conn = self._connection()
        try:
            conn.nodeDeviceCreateXML(xml, 0)
        except lv.libvirtError as e:
            raise mdev_error(lv, e, action, target)
        try:
            device = conn.nodeDeviceDefineXML(xml, 0)
        except lv.libvirtError as e:
            error = mdev_error(lv, e, 'define', target)
            # Not left behind unowned: the caller forgets a refused create.
            self._destroy_quietly(mdev_uuid)
            raise error
        self._autostart(device, mdev_uuid)

    def _autostart(self, device, mdev_uuid):
        # As Nova: not fatal. A defined mdev that did not start at boot is
        # started by the next create_mdev of it (reconcile recreates).
        try:
            device.setAutostart(1)
        except (self._libvirt.libvirtError, AttributeError) as e:
            LOG.warning('libvirt: could not set mdev %s to autostart: %s; '
                        'reconcile starts it after a reboot', mdev_uuid,
                        ' '.join(str(e).split()))

    def _destroy_quietly(self, mdev_uuid):
        for device, _info in self._find_mdevs(mdev_uuid):
            try:
                device.destroy()
            except self._libvirt.libvirtError as e:
                LOG.warning('libvirt: could not destroy mdev %s after a '
                            'failed define: %s', mdev_uuid,
                            ' '.join(str(e).split()))

    def remove_mdev(self, mdev_uuid):
        mdev_uuid = base.checked_uuid(mdev_uuid, 'remove', 'mdev')
        action, target = 'remove', 'mdev ' + mdev_uuid
        lv = self._libvirt
        found = self._find_mdevs(mdev_uuid)
        if not found:
            raise exceptions.MdevNotFound(action, target)
        for device, _info in found:
            try:
                if self._is_active(device):
                    device.destroy()
                # A transient mdev has no definition to remove.
                is_persistent = getattr(device, 'isPersistent', None)
                if is_persistent is None or is_persistent():
                    device.undefine()
            except lv.libvirtError as e:
                raise mdev_error(lv, e, action, target)

    def boot_id(self):
        return self._sysfs.boot_id()

    def set_vendor_params(self, mdev_uuid, type_id, params):
        """Written through sysfs as the sysfs driver does (see the module
        docstring): libvirt has no call that sets them on a live mdev."""
        self._sysfs.set_vendor_params(mdev_uuid, type_id, params)
