"""The shipped sample config is what oslo-config-generator makes today."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def test_sample_config_is_current(tmp_path):
    out = tmp_path / 'sample.conf'
    subprocess.run(
        [sys.executable, '-m', 'oslo_config.generator', '--config-file',
         os.path.join(ROOT, 'etc', 'oslo-config-generator',
                      'vgpu-placement.conf'), '--output-file', str(out)],
        check=True, cwd=ROOT, capture_output=True)
    with open(os.path.join(ROOT, 'etc', 'vgpu-placement',
                           'vgpu-placement.conf.sample')) as f:
        shipped = f.read()
    assert out.read_text() == shipped, (
        'etc/vgpu-placement/vgpu-placement.conf.sample is stale: run '
        'oslo-config-generator --config-file '
        'etc/oslo-config-generator/vgpu-placement.conf')
