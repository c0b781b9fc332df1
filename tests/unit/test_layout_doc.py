"""doc/source/contributor/layout.rst lists every module and its job as
the code has them."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def test_the_layout_page_lists_every_module_with_its_docstring():
    current = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools', 'module-map'),
         '--rst'], check=True, capture_output=True, text=True).stdout
    with open(os.path.join(ROOT, 'doc', 'source', 'contributor',
                           'layout.rst')) as f:
        page = f.read()
    assert current.strip() in page, (
        'doc/source/contributor/layout.rst is out of date: write the '
        'output of tools/module-map --rst into it')
    assert '``vgpu_placement/host/realize.py``' in current
