"""The Nova releases the compute driver starts on (no Nova needed)."""
import pytest

from vgpu_placement.nova import release


def test_a_supported_release_starts():
    assert release.refusal('34.0.0') is None
    assert release.refusal('34.1.2') is None


@pytest.mark.parametrize('found', ['33.1.0', '35.0.0', '31.0.0', '', None,
                                   'master', '3400.0'])
def test_any_other_is_one_line_naming_it_and_the_range(found):
    line = release.refusal(found)
    assert line is not None and '\n' not in line
    assert 'Nova %s is not supported' % (found or '(no version)') in line
    assert '34.x' in line
