"""The Nova releases the compute driver starts on (no Nova needed)."""
import pytest

from vgpu_placement.nova import release


@pytest.mark.parametrize('found', ['31.3.1', '32.0.0', '33.0.2', '34.0.0',
                                   '34.1.2'])
def test_every_release_of_the_train_starts(found):
    assert release.refusal(found) is None


@pytest.mark.parametrize('found', ['30.2.0', '35.0.0', '29.0.0', '', None,
                                   'master', '3400.0'])
def test_any_other_is_one_line_naming_it_and_the_range(found):
    line = release.refusal(found)
    assert line is not None and '\n' not in line
    assert 'Nova %s is not supported' % (found or '(no version)') in line
    for supported in ('31.x (2025.1 Epoxy)', '32.x (2025.2 Flamingo)',
                      '33.x (2026.1 Gazpacho)', '34.x (2026.2 Hibiscus)'):
        assert supported in line
