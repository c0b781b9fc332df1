"""What the scale run's hosts and schedulers are configured with, and the
demand: the mix of types and each type's flavor.

Every process of the run builds its configuration from ini(url): the
[placement] section of the run's Placement (noauth2) plus, with
--connect-retries, that option (set once in the main process before the
children are forked).
"""
import os
import shutil
import tempfile

import common

BENCH_PROFILES = os.path.join(common.HERE, 'profiles')
PROJECT, USER = 'scale-run-project', 'scale-run-user'
EXTRA_INI = ''          # --connect-retries adds a line here


def set_connect_retries(count):
    """[placement] connect_retries = count for every client of the run."""
    global EXTRA_INI
    EXTRA_INI = 'connect_retries = %d\n' % count


def ini(url):
    return common.remote_ini(url) + EXTRA_INI


def host_conf(url, profile, state_dir, host):
    """A simulated host of ``profile`` reporting to ``url``, creating its
    root provider (no Nova here)."""
    return common.simulated_conf(profile, state_dir, host, url=url,
                                 config_text=EXTRA_INI,
                                 create_root_provider=True)


def load_mix(profile, mix_arg, type_ids):
    """{type: weight}: --mix, else the bench profile's mix, else equal."""
    if mix_arg:
        mix = {}
        for part in mix_arg.split(','):
            name, _, weight = part.partition('=')
            mix[name.strip()] = float(weight or 1)
        return mix, '--mix'
    path = os.path.join(BENCH_PROFILES, profile + '.yaml')
    if os.path.exists(path):
        import yaml
        with open(path) as f:
            doc = yaml.safe_load(f) or {}
        mix = (doc.get('bench') or {}).get('mix')
        if mix:
            return ({t: float(w) for t, w in mix.items()},
                    'benches/profiles/%s.yaml' % profile)
    return {t: 1.0 for t in type_ids}, 'every type, equal weights'


def flavors_for(profile, mix_arg):
    """(flavors {type: extra specs}, weights {type: w}, mix source, models
    {parent: kind}) from a throw-away simulated host of the profile."""
    from vgpu_placement.placement import flavor
    from vgpu_placement.service import standalone
    tmp = tempfile.mkdtemp(prefix='scale-run-flavors-')
    try:
        # The endpoint is never contacted: the tree is built offline.
        conf = host_conf('http://127.0.0.1:9', profile, tmp, 'flavor-host')
        reporter = standalone.reporter_for(conf)
        desired = reporter.desired_tree(reporter.discover())
        type_ids = sorted({t for c in desired.children
                           for t in c.plan.classes})
        models = {c.device: c.plan.model.kind for c in desired.children}
        mix, source = load_mix(profile, mix_arg, type_ids)
        flavors, skipped = {}, {}
        for type_id in sorted(mix):
            try:
                flavors[type_id] = flavor.extra_specs_for_type(
                    desired, type_id)['extra_specs']
            except Exception as e:      # noqa: a type the host lacks, etc.
                skipped[type_id] = str(e)
        weights = {t: mix[t] for t in flavors if mix[t] > 0}
        if not weights:
            raise SystemExit('scale_run: no type of the mix can be asked '
                             'for: %s' % skipped)
        return flavors, weights, source, models, skipped
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
