"""CPU seconds per component, read from /proc.

A component is a set of process trees (or single processes, own_only);
CpuMeter samples them all with the machine's busy and total time, and
text() says what each used over a window.
"""
import collections
import os

TICK = os.sysconf('SC_CLK_TCK')


def proc_table():
    """{pid: (ppid, CPU seconds so far)} of every process."""
    out = {}
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % d) as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rfind(')') + 2:].split()
        out[int(d)] = (int(rest[1]), (int(rest[11]) + int(rest[12])) / TICK)
    return out


def tree_cpu(table, roots, own_only=False):
    """CPU seconds of the processes under roots (themselves included)."""
    children = collections.defaultdict(list)
    for pid, (ppid, _cpu) in table.items():
        children[ppid].append(pid)
    seen, stack, total = set(), list(roots), 0.0
    while stack:
        pid = stack.pop()
        if pid in seen or pid not in table:
            continue
        seen.add(pid)
        total += table[pid][1]
        if not own_only:
            stack.extend(children[pid])
    return total


def machine_cpu():
    """(busy, total) CPU seconds of the machine since boot."""
    with open('/proc/stat') as f:
        vals = [int(x) for x in f.readline().split()[1:9]]
    return (sum(vals) - vals[3] - vals[4]) / TICK, sum(vals) / TICK


class CpuMeter:
    """CPU seconds per component over a window."""

    def __init__(self, groups):
        self.groups = groups          # {name: (pids, own_only)}

    def sample(self):
        table = proc_table()
        busy, total = machine_cpu()
        out = {name: tree_cpu(table, pids, own) for name, (pids, own) in
               self.groups.items()}
        out['_busy'], out['_total'] = busy, total
        return out

    @staticmethod
    def text(before, after, seconds):
        d = {k: after[k] - before[k] for k in after}
        ours = sum(v for k, v in d.items() if not k.startswith('_'))
        parts = ['machine %.0f%% busy of %d CPUs' % (
            100 * d['_busy'] / max(1e-9, d['_total']), os.cpu_count())]
        parts += ['%s %.0f s (%.2f CPU)' % (k, v, v / seconds)
                  for k, v in d.items() if not k.startswith('_')]
        parts.append('anything else %.0f s' % max(0.0, d['_busy'] - ours))
        return '; '.join(parts)
