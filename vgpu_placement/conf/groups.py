"""Registering an option group on one ConfigOpts without sharing state."""
from oslo_config import cfg


def register(conf, group, opts):
    """Register opts under a fresh copy of ``group``.

    An OptGroup object keeps the overrides set through each ConfigOpts it
    is registered on; sharing one module-level object would leak them
    from one ConfigOpts to the next.
    """
    conf.register_group(cfg.OptGroup(group.name, title=group.title,
                                     help=group.help))
    conf.register_opts(opts, group=group.name)
