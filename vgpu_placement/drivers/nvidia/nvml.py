"""What NVML says of a physical GPU's vGPU types, for the nvidia_vfio driver.

sysfs carries no counts on NVIDIA's vendor-specific VFIO layout. NVML (the
``nvidia-ml-py`` package, module ``pynvml``) does: the GPU's supported
types (a list that does not shrink as vGPUs are made), each type's name,
framebuffer, display heads, resolution and maximum per GPU, whether the
GPU is in mixed-size mode and each type's placements there, MIG mode and
the GPU instances of each profile. It is imported only when a GPU on that
layout is read, and never required: ``gpu()`` returns None when it cannot
be used, and ``why_not`` says why in one line (said once by the caller).

Nothing here has run against real hardware: the calls and their order
follow NVIDIA's NVML header (doc/source/reference/nvidia-vgpu.rst,
"Mixed-size mode" and "MIG-backed types").
"""
import dataclasses

from vgpu_placement.model import discovered


@dataclasses.dataclass(frozen=True)
class GpuTypes:
    """One physical GPU as NVML sees it."""
    types: dict          # vGPU type ID (int) -> (name, description, VgpuInfo)
    mixed: bool          # mixed-size (heterogeneous) mode is on
    mig: bool            # MIG mode is on


def _text(value):
    return value.decode('utf-8', 'replace') if isinstance(value, bytes) \
        else str(value)


class Nvml:
    """Lazy NVML access; one instance per driver."""

    def __init__(self, importer=None):
        self._importer = importer or (lambda: __import__('pynvml'))
        self._lib = None
        self.why_not = None      # one line, once NVML is known unusable
        self.last_error = None   # one line: the last GPU NVML failed on

    def _load(self):
        if self._lib is not None or self.why_not is not None:
            return self._lib
        try:
            lib = self._importer()
        except ImportError:
            self.why_not = ('the nvidia-ml-py package (module pynvml) is not '
                            'installed; pip install nvidia-ml-py (the nvml '
                            'extra)')
            return None
        try:
            lib.nvmlInit()
        except Exception as e:      # NVMLError_LibraryNotFound, ...
            self.why_not = 'NVML could not start: %s' % (
                str(e).splitlines()[0] if str(e) else type(e).__name__)
            return None
        self._lib = lib
        return lib

    def gpu(self, pci_address):
        """GpuTypes of the physical GPU at pci_address, or None (then
        why_not says why, or the GPU alone could not be read)."""
        lib = self._load()
        if lib is None:
            return None
        try:
            return self._read(lib, pci_address)
        except Exception as e:      # NVMLError_*: this GPU only
            self.last_error = '%s: %s' % (pci_address, e)
            return None

    @staticmethod
    def _read(lib, pci_address):
        handle = lib.nvmlDeviceGetHandleByPciBusId(pci_address)
        try:
            mixed = bool(lib.nvmlDeviceGetVgpuHeterogeneousMode(handle).mode)
        except Exception:           # not supported (Turing, Volta, MIG on)
            mixed = False
        try:
            mig = bool(lib.nvmlDeviceGetMigMode(handle)[0])
        except Exception:
            mig = False
        gi_counts = {}
        types = {}
        for type_id in lib.nvmlDeviceGetSupportedVgpus(handle):
            type_id = int(type_id)
            name = _text(lib.nvmlVgpuTypeGetName(type_id))
            fb_mb = int(lib.nvmlVgpuTypeGetFramebufferSize(type_id)) >> 20
            max_instance = int(
                lib.nvmlVgpuTypeGetMaxInstances(handle, type_id))
            heads = int(lib.nvmlVgpuTypeGetNumDisplayHeads(type_id))
            width, height = lib.nvmlVgpuTypeGetResolution(type_id, 0)
            frl = int(lib.nvmlVgpuTypeGetFrameRateLimit(type_id))
            info = discovered.VgpuInfo(framebuffer_mb=fb_mb,
                                       max_instance=max_instance)
            gi_profile = None
            if mig:
                profile_id = int(
                    lib.nvmlVgpuTypeGetGpuInstanceProfileId(type_id))
                if profile_id == getattr(
                        lib, 'INVALID_GPU_INSTANCE_PROFILE_ID', 0xFFFFFFFF):
                    continue        # time-sliced: not creatable under MIG
                gi_profile = 'profile%d' % profile_id
                if gi_profile not in gi_counts:
                    profile = lib.nvmlDeviceGetGpuInstanceProfileInfo(
                        handle, profile_id)
                    gi_counts[gi_profile] = len(
                        lib.nvmlDeviceGetGpuInstances(handle, profile.id))
                info = dataclasses.replace(
                    info, gi_profile=gi_profile,
                    gi_count=gi_counts[gi_profile])
            elif mixed:
                placements = lib.nvmlDeviceGetVgpuTypeSupportedPlacements(
                    handle, type_id)
                info = dataclasses.replace(
                    info, placement_size=int(placements.placementSize),
                    placement_ids=tuple(
                        int(i) for i in placements.placementIds[
                            :placements.count]))
            # The description NVIDIA's mdev types carry, so that traits and
            # models read alike on both layouts.
            description = ('num_heads=%d, frl_config=%d, framebuffer=%dM, '
                           'max_resolution=%dx%d, max_instance=%d'
                           % (heads, frl, fb_mb, width, height,
                              max_instance))
            types[type_id] = (name, description, info)
        return GpuTypes(types, mixed, mig)
