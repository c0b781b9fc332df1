"""The capacity view as a picture: ``vgpu-placement capacity --output F``.

matplotlib (the extra ``plot``) draws, per host and GPU, each class the
GPU offers as one bar of its units: used by claims, reserved (held
outside any claim: other owners' mdevs, sizes closed on an equal-size
GPU, a report window's cap) and free, each bar as a share of the class's
total with ``used/reserved/total`` beside it. SVG keeps its text as
text, so the names can be searched.
"""
import os

from vgpu_placement import exceptions

FORMATS = ('svg', 'png')
COLOURS = {'used': '#2b6cb0', 'reserved': '#a0aec0', 'free': '#e2f0e5'}


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise exceptions.VgpuPlacementError(
            "--output needs matplotlib: python3 -m pip install "
            "'vgpu-placement[plot]'")
    matplotlib.use('Agg')           # no display: a file only
    matplotlib.rcParams['svg.fonttype'] = 'none'
    from matplotlib import pyplot
    return pyplot


def bars(gpus):
    """[(label, used, reserved, free, total)]: one per GPU and class."""
    rows = []
    for gpu in gpus:
        short = gpu.name[len(gpu.host) + 1:] if gpu.name.startswith(
            gpu.host + '_') else gpu.name
        for rc, inv in sorted(gpu.inventories.items()):
            used = gpu.usages.get(rc, 0)
            reserved = min(inv['reserved'], inv['total'])
            rows.append(('%s  %s  %s' % (gpu.host, short, rc), used,
                         reserved, max(0, inv['total'] - reserved - used),
                         inv['total']))
    return rows


def write(path, gpus):
    """Draw ``gpus`` (headroom.Gpu) into ``path`` (.svg or .png)."""
    kind = os.path.splitext(path)[1].lower().lstrip('.')
    if kind not in FORMATS:
        raise exceptions.VgpuPlacementError(
            '--output %s: name a .svg or .png file' % path)
    rows = bars(gpus)
    if not rows:
        raise exceptions.VgpuPlacementError(
            '--output: no GPU provider in Placement to draw')
    pyplot = _pyplot()
    fig, ax = pyplot.subplots(figsize=(11, 0.32 * len(rows) + 1.6))
    y = list(range(len(rows)))
    left = [0.0] * len(rows)
    for i, part in enumerate(('used', 'reserved', 'free')):
        share = [r[1 + i] / r[4] for r in rows]
        ax.barh(y, share, left=left, color=COLOURS[part], label=part,
                edgecolor='white', linewidth=0.5)
        left = [a + b for a, b in zip(left, share)]
    for row, (label, used, reserved, free, total) in enumerate(rows):
        ax.text(1.01, row, '%d/%d/%d' % (used, reserved, total),
                va='center', fontsize=7)
    ax.set_yticks(y, [r[0] for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.12)
    ax.set_xlabel('share of each class\'s total (used/reserved/total)')
    ax.set_title('vGPU capacity in Placement: %d GPU(s) on %d host(s)'
                 % (len(gpus), len({g.host for g in gpus})), pad=22)
    ax.legend(loc='lower center', bbox_to_anchor=(0.5, 1.0), ncol=3,
              fontsize=8, frameon=False)
    fig.tight_layout()
    try:
        fig.savefig(path, format=kind)
    except OSError as e:
        raise exceptions.VgpuPlacementError(
            '--output %s: %s' % (path, e.strerror or e))
    finally:
        pyplot.close(fig)
