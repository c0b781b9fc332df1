"""The figures of one run, as the table prints them, and its verdict on
the targets."""
import collections

import common
from scale.agents import BAD_KEYS

pct = common.percentile
print_table = common.print_rows


def ms(values):
    if not values:
        return '-'
    return 'p50 %.0f / p95 %.0f / max %.0f ms' % (
        pct(values, .5) * 1000, pct(values, .95) * 1000, max(values) * 1000)


def summarize(run, harness_info):
    """Rows (name, value) of one run, and the targets."""
    a = run.args
    fig = run.fig
    rows = []
    add = lambda k, v: rows.append((k, v))
    add('Placement', harness_info)
    add('registration', fig['registration'])
    add('providers', fig['providers'])
    s0, s1, s2, s3, drained, never_quiet = fig['_steady']
    dur = s1 - s0

    steady = [c for c in run.claims if c[1] == 'steady']
    ok = [c for c in steady if c[6] == 'ok']
    retries = sum(c[7] - 1 for c in steady if c[6] in ('ok', 'foreign'))
    raced = sum(1 for c in steady if c[6] == 'ok' and c[7] > 1)
    nvh = sum(1 for c in steady if c[6] == 'novalidhost')
    cerr = collections.Counter(c[8] for c in steady if c[6] == 'error')
    foreign = sum(1 for c in steady if c[6] == 'foreign')
    add('steady: claims', '%d granted in %.1f s = %.1f claims/s '
        '(%d schedulers)' % (len(ok), dur, len(ok) / dur, a.schedulers))
    add('steady: 409 retries', '%d (%.2f per claim; %d claims needed more '
        'than one PUT)' % (retries, retries / max(1, len(ok)), raced))
    add('steady: NoValidHost', nvh)
    add('steady: claim errors', sum(cerr.values()) if not cerr else
        '%d (%s)' % (sum(cerr.values()), '; '.join(
            '%d x %s' % (n, e) for e, n in cerr.most_common(3))))
    if foreign:
        add('steady: claims on foreign providers', foreign)
    add('steady: claim latency', ms([c[5] - c[4] for c in ok]))
    by_type = collections.Counter(c[2] for c in ok)
    add('steady: mix granted', ', '.join('%s %d' % kv for kv in
                                         sorted(by_type.items())))

    sreal = [r for r in run.realizes if r[3] == 'steady']
    late = [r for r in sreal if r[6] == 'late']
    rerr = collections.Counter(r[7] for r in sreal if r[6] == 'error')
    add('steady: builds', '%d realized, %d late failures, %d other errors'
        % (sum(1 for r in sreal if r[6] == 'ok'), len(late),
           sum(rerr.values())))
    if late:
        add('  late failures by type', ', '.join(
            '%s %d' % kv for kv in sorted(collections.Counter(
                r[2] for r in late).items())))
        add('  e.g.', late[0][7])
    for e, n in rerr.most_common(3):
        add('  build error', '%d x %s' % (n, e))
    add('steady: realize latency', ms([r[5] - r[4] for r in sreal
                                       if r[6] == 'ok']))
    rel = [r for r in run.releases if r[2] == 'steady']
    relerr = collections.Counter(r[6] for r in rel if r[6])
    add('steady: releases', '%d done (%d of them only when tried again), %d '
        'failed 3 times' % (sum(1 for r in rel if r[5] == 'ok'),
                            sum(1 for r in rel if r[5] == 'ok' and r[7] > 1),
                            sum(1 for r in rel if r[5] != 'ok')))
    for e, n in relerr.most_common(3):
        add('  release error', '%d x %s' % (n, e))
    add('steady: drain', 'builds and holds done %.1f s after the schedulers '
        'stopped%s; every agent report zero writes %.1f s later%s' % (
            s2 - s1, '' if drained else ' (TIMED OUT)', s3 - s2,
            '' if not never_quiet else ' (%d hosts never quiet)'
            % never_quiet))

    # Agent reports during the steady window.
    rep = [r for r in run.reports if s0 <= r[1] < s1]
    lags = [r[6] for r in rep if r[6] is not None]
    rerrs = collections.Counter(r[5] for r in run.reports if r[5])
    add('agents: reports (steady)', '%d = %.1f/s (interval %g s, %d hosts); '
        '%d with writes, %d writes' % (
            len(rep), len(rep) / dur, a.report_interval, a.hosts,
            sum(1 for r in rep if r[3]), sum(r[3] for r in rep)))
    add('agents: report latency', ms([r[2] - r[1] for r in rep]))
    add('CPU (steady window)', fig['_cpu'])
    add('agents: start lag', ms(lags))
    add('agents: report errors (whole run)', sum(rerrs.values()) if not rerrs
        else '%d (%s)' % (sum(rerrs.values()), '; '.join(
            '%d x %s' % (n, e) for e, n in rerrs.most_common(3))))

    # Burst.
    b0, b1, b2, conv, never, since = fig['_burst']
    burst = [c for c in run.claims if c[1] == 'burst']
    bok = [c for c in burst if c[6] == 'ok']
    breal = [r for r in run.realizes if r[3] == 'burst']
    touched = {r[0] for r in breal}
    blate = sum(1 for r in breal if r[6] == 'late')
    berr = sum(1 for r in breal if r[6] == 'error')
    add('burst: claims', '%d granted of %d in %.2f s = %.1f claims/s; '
        '%d 409 retries, %d NoValidHost' % (
            len(bok), len(burst), b1 - b0, len(bok) / max(1e-9, b1 - b0),
            sum(c[7] - 1 for c in bok),
            sum(1 for c in burst if c[6] == 'novalidhost')))
    add('burst: builds', '%d realized on %d hosts, %d late failures, '
        '%d other errors; last done at +%.1f s' % (
            sum(1 for r in breal if r[6] == 'ok'), len(touched), blate,
            berr, max([r[5] for r in breal] or [b0]) - b0))
    last_write = max([w for i, (c, w) in conv.items() if w] +
                     [r[5] for r in breal] + [b0])
    confirmed = [c for c, _w in conv.values() if c]
    for e, n in collections.Counter(r[7] for r in breal
                                    if r[6] != 'ok').most_common(3):
        add('  burst build failure', '%d x %s' % (n, e))
    add('burst: converged', '%s after the burst began (every host\'s next '
        'agent report after its last build made zero writes; last write '
        'to their providers, by a build or an agent, at +%.1f s)%s' % (
            ('%.1f s' % (max(confirmed) - b0)) if not never else
            'NOT within the timeout', last_write - b0,
            '' if not never else '; %d hosts never converged' % len(never)))
    untouched_writes = sum(1 for r in run.reports
                           if r[1] >= b0 and r[0] not in touched and r[3])
    if untouched_writes:
        add('burst: reports with writes on untouched hosts',
            untouched_writes)

    # Final check.
    total, errors, paused = fig['_check']
    lost = total.get('lost_allocations', 0)
    leaked = total.get('leaked_allocations', 0)
    add('final: instances held', '%d (burst), %d allocations, %d mdevs in '
        'Placement/hosts' % (total.get('held', 0),
                             total.get('allocations', 0),
                             total.get('mdevs', 0)))
    add('final: allocations lost / leaked', '%d / %d' % (lost, leaked))
    add('final: allocations without mdev / leaked mdevs', '%d / %d' % (
        total.get('allocations_without_mdev', 0),
        total.get('leaked_mdevs', 0)))
    add('final: ledger mismatches / usage mismatches / over capacity',
        '%d / %d / %d' % (total.get('ledger_mismatch', 0),
                          total.get('usage_mismatch', 0),
                          total.get('over_capacity', 0)))
    add('final: reconcile actions / releases owed', '%d / %d' % (
        total.get('reconcile_actions', 0), total.get('releases_owed', 0)))
    if errors:
        add('final: check errors', '%d (%s)' % (len(errors), errors[0]))
    empty, usages = fig['_empty']
    add('after releasing all', 'allocations %d, providers in use %d, mdevs '
        '%d, ledger records %d, owed %d, project usages %s' % (
            empty.get('allocations_left', 0),
            empty.get('providers_in_use', 0), empty.get('mdevs_left', 0),
            empty.get('ledger_left', 0), empty.get('releases_owed', 0),
            usages or '{}'))
    if run.crashes:
        add('bench errors', '%d (%s)' % (len(run.crashes),
                                         run.crashes[0][1].strip()
                                         .splitlines()[-1]))
    logs = collections.Counter()
    example = {}
    for _who, items in run.logs:
        for key, n, ex in items:
            logs[key] += n
            example.setdefault(key, ex)
    for key, n in logs.most_common(4):
        add('log %s %s' % (key[0], key[1]), '%d x %s' % (n, example[key]))
    if fig.get('cleanup'):
        add('cleanup', fig['cleanup'])
    add('time', 'run %.0f s (check and release %.0f s)' % (
        fig['_total_time'], fig['_check_time']))

    bad_final = (lost + leaked + sum(total.get(k, 0) for k in BAD_KEYS) +
                 sum(empty.values()) + len(errors) + len(run.crashes) +
                 len(usages))
    return rows, {
        'late': len(late) + blate, 'lost_leaked': lost + leaked,
        'final_ok': bad_final == 0,
        'build_errors': sum(rerr.values()) + berr,
        'builds': len(sreal) + len(breal),
        'release_retried': sum(1 for r in run.releases if r[7] > 1)}
