import os_traits

from vgpu_placement.model import discovered
from vgpu_placement.placement import traits

NVIDIA = ('num_heads=4, frl_config=60, framebuffer=2048M, '
          'max_resolution=4096x2160, max_instance=4')
GVT = ('low_gm_size: 128MB\nhigh_gm_size: 512MB\nfence: 4\n'
       'resolution: 1920x1200\nweight: 4\n')


def test_nvidia_description():
    assert traits.parse_description(NVIDIA) == {
        'heads': 4, 'resolution': (4096, 2160), 'framebuffer_mb': 2048}
    got = traits.capability_traits(NVIDIA)
    assert os_traits.HW_GPU_MAX_DISPLAY_HEADS_4 in got
    # os-traits has no 4096x2160: a custom trait stands in.
    assert 'HW_GPU_RESOLUTION_W4096H2160' not in os_traits.get_traits()
    assert 'CUSTOM_HW_GPU_RESOLUTION_W4096H2160' in got
    assert 'CUSTOM_VGPU_FRAMEBUFFER_2048MB' in got


def test_gvt_mbochs_mdpy_and_empty_descriptions():
    assert traits.capability_traits(GVT) == {
        os_traits.HW_GPU_RESOLUTION_W1920H1200}
    assert traits.capability_traits(
        'virtual display, 16 MB video memory') == {
            'CUSTOM_VGPU_FRAMEBUFFER_16MB'}
    assert traits.capability_traits(
        'virtual display, 1920x1080 framebuffer') == {
            os_traits.HW_GPU_RESOLUTION_W1920H1080}
    assert traits.capability_traits('') == set()
    assert traits.capability_traits('garbage = = , x') == set()


def _type(type_id, description):
    return discovered.MdevType(type_id, type_id, description, 'vfio-pci', 1)


def test_parent_traits_only_keep_capabilities_every_type_has():
    q = _type('nvidia-231', NVIDIA)
    a = _type('nvidia-226', NVIDIA.replace('num_heads=4', 'num_heads=1'))
    got = traits.parent_traits([q, a])
    assert {'CUSTOM_MDEV_TYPE_NVIDIA_231', 'CUSTOM_MDEV_TYPE_NVIDIA_226',
            traits.MANAGED} <= got
    assert 'CUSTOM_VGPU_FRAMEBUFFER_2048MB' in got
    assert os_traits.HW_GPU_MAX_DISPLAY_HEADS_4 not in got
    assert os_traits.HW_GPU_MAX_DISPLAY_HEADS_1 not in got
    assert os_traits.HW_GPU_MAX_DISPLAY_HEADS_4 in traits.parent_traits([q])


def test_odd_digits_in_a_description_are_not_believed():
    # '²' passes str.isdigit() and then fails int(): a report must not.
    props = traits.parse_description(
        'num_heads=\u00b2, framebuffer=\u0663M, max_resolution=1280x1024')
    assert 'heads' not in props and 'framebuffer_mb' not in props
    assert props['resolution'] == (1280, 1024)
