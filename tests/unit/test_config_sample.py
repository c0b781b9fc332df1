"""The shipped sample config is what oslo-config-generator makes today.

Only what this project writes is compared: the options of the
``vgpu_placement`` namespace, with what keystoneauth1 contributes to
[placement] (its options' help, their set, their defaults) left out but
where we change it (a help text or a default of ours), and oslo.log's
options left out. Those change with the installed keystoneauth1 and
oslo.log, not with this project; the shipped file is still the whole
generator output (regenerate it with the command in the message below).
"""
import os
import re
import subprocess
import sys

from keystoneauth1 import loading as ks_loading

from vgpu_placement.conf import placement as placement_conf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SAMPLE = os.path.join(ROOT, 'etc', 'vgpu-placement',
                      'vgpu-placement.conf.sample')
GENERATE = ('oslo-config-generator --config-file '
            'etc/oslo-config-generator/vgpu-placement.conf')

_GROUP = re.compile(r'\[(.+)\]$')
_NAMESPACE = re.compile(r'# From (\S+)$')
_VALUE = re.compile(r'#([A-Za-z0-9_.$-]+) =( |$)')
_TYPE_MARK = re.compile(r'\s*\([a-z ]+ value\)$')


def _keystoneauth_parts():
    """{dest: (help is ours, default is ours)} for the [placement] options
    built from keystoneauth1's (compared with keystoneauth1's own)."""
    stock = {o.dest: o for o in (
        ks_loading.get_session_conf_options() +
        ks_loading.get_auth_common_conf_options() +
        ks_loading.get_auth_plugin_conf_options('password') +
        ks_loading.get_auth_plugin_conf_options('admin_token') +
        ks_loading.get_adapter_conf_options(include_deprecated=False))}
    found = {}
    for group, opts in placement_conf.list_opts().items():
        if group.name != 'placement':
            continue
        for opt in opts:
            if opt.dest in stock:
                found[opt.dest] = (opt.help != stock[opt.dest].help,
                                   opt.default != stock[opt.dest].default)
    return found


def blocks(text):
    """[(group, namespace, option name or None, lines)]: the sample cut at
    blank lines."""
    out, group, namespace, lines = [], None, None, []

    def close():
        if lines:
            values = [_VALUE.match(line) for line in lines]
            names = {m.group(1) for m in values if m}
            name = names.pop() if len(names) == 1 else None
            out.append((group, namespace, name, list(lines)))
            del lines[:]
    for line in text.splitlines():
        if _GROUP.match(line):
            close()
            group, namespace = _GROUP.match(line).group(1), None
        elif _NAMESPACE.match(line):
            namespace = _NAMESPACE.match(line).group(1)
        if line.strip():
            lines.append(line)
        else:
            close()
    close()
    return out


def _help_prose(lines):
    """The help text of an option block, unwrapped, without what oslo.config
    adds from the option's type (the "(... value)" mark and what follows:
    limits, choices, deprecated names), which follows keystoneauth1's."""
    words = []
    for line in lines:
        text = line[1:].strip()
        mark = _TYPE_MARK.search(text)
        if mark:
            words.append(text[:mark.start()])
            break
        words.append(text)
    return '# ' + ' '.join(' '.join(words).split())


def ours_only(text):
    """The sample's text this project writes, block by block."""
    keystoneauth = _keystoneauth_parts()
    ours_in_placement = {o.dest for group, opts in
                         placement_conf.list_opts().items()
                         if group.name == 'placement' for o in opts}
    kept = []
    for group, namespace, name, lines in blocks(text):
        if name is not None and namespace == 'oslo.log':
            continue
        if name is not None and group == 'placement' and (
                name in keystoneauth or name not in ours_in_placement):
            help_ours, default_ours = keystoneauth.get(name, (False, False))
            lines = ([_help_prose(lines)] if help_ours else []) + [
                line for line in lines if default_ours and _VALUE.match(line)]
            if not lines:
                continue
        kept.append('\n'.join(lines))
    return '\n\n'.join(kept) + '\n'


def test_sample_config_is_current(tmp_path):
    out = tmp_path / 'sample.conf'
    subprocess.run(
        [sys.executable, '-m', 'oslo_config.generator', '--config-file',
         os.path.join(ROOT, 'etc', 'oslo-config-generator',
                      'vgpu-placement.conf'), '--output-file', str(out)],
        check=True, cwd=ROOT, capture_output=True, timeout=120)
    with open(SAMPLE) as f:
        shipped = f.read()
    assert ours_only(out.read_text()) == ours_only(shipped), (
        'etc/vgpu-placement/vgpu-placement.conf.sample is stale: run '
        + GENERATE)


def test_only_keystoneauth_and_oslo_log_text_is_left_out():
    with open(SAMPLE) as f:
        shipped = f.read()
    ours = ours_only(shipped)
    # Another keystoneauth1 or oslo.log: other help texts, an option more
    # or less, another default of an option we leave as it is.
    other = shipped.replace(
        '# Authentication URL (string value)\n',
        '# New in a later release. (string value)\n#some_new_option = '
        '<None>\n\n# The URL of the identity service. (URI value)\n'
    ).replace('#collect_timing = false\n', '#collect_timing = true\n')
    other = re.sub(r'\n# The minimum TLS version[^[]*?#tls_min_version = '
                   r'<None>\n', '\n', other)
    other = other.replace('# Use syslog for logging.',
                          '# Log to syslog.')
    assert other != shipped and ours_only(other) == ours
    assert '#tls_min_version' not in other
    # What we write is compared, in [placement] too: our help and default
    # of keystoneauth1's timeout, our defaults of its adapter options, our
    # group help; and any option of ours elsewhere.
    for old, new in [
            ('#timeout = 30\n', '#timeout = 31\n'),
            ('# Seconds to wait for Placement', '# Seconds to wait for a '
             'Placement'),
            ('#service_type = placement\n', '#service_type = x\n'),
            ('#connect_retries = 3\n', '#connect_retries = 0\n'),
            ('#valid_interfaces = internal,public\n',
             '#valid_interfaces = public\n'),
            ("as in Nova's [placement] section.",
             "as Nova's [placement] section."),
            ('#report_interval = 60\n', '#report_interval = 61\n'),
            ('# Seconds between two reports to Placement.',
             '# Seconds between reports to Placement.')]:
        assert shipped.count(old) == 1, old
        assert ours_only(shipped.replace(old, new)) != ours, old
