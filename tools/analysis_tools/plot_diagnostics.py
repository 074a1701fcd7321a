# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Plot the ``dynamixer/*`` diagnostics of a run against the iteration.

Reads the ``scalars.json`` that MMEngine's ``LocalVisBackend`` writes
(``WORK_DIR/TIMESTAMP/vis_data/scalars.json``), the same file MMPretrain's
``analyze_logs.py plot_curve`` reads, and draws one panel per stage: the
mixing entropies of the column and row ops (with ``log N``, uniform mixing,
dashed) and the branch weights, plus the loss.

Example:
    python tools/analysis_tools/plot_diagnostics.py \\
        work_dirs/dynamixer-tiny_1xb64_digits/*/vis_data/scalars.json \\
        --out-file diagnostics.png
"""
import argparse
import json
import math
import os.path as osp
import re
from collections import defaultdict

import mmdynamixer  # noqa: F401
from mmdynamixer.visualization import save_or_show

KEY = re.compile(r'dynamixer/stage(\d+)_(entropy|weight)_(\w+)$')


def load_series(path: str) -> dict:
    """``{key: (steps, values)}`` of every ``dynamixer/*`` scalar and the
    loss in a ``scalars.json``, in the order logged."""
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path} not found: give the scalars.json of a run '
            '(WORK_DIR/TIMESTAMP/vis_data/scalars.json).')
    series = defaultdict(lambda: ([], []))
    with open(path) as f:
        for line in f:
            entry = json.loads(line)
            for key, value in entry.items():
                if KEY.match(key) or key == 'loss':
                    series[key][0].append(entry['step'])
                    series[key][1].append(value)
    if not any(KEY.match(k) for k in series):
        raise ValueError(
            f'{path} has no dynamixer/* scalars: train with '
            "custom_hooks=[dict(type='DynaMixerDiagnosticsHook')] to log "
            'them.')
    return dict(series)


def plot(series: dict, tokens: dict, title: str = ''):
    import matplotlib
    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt
    stages = sorted({int(KEY.match(k).group(1)) for k in series
                     if KEY.match(k)})
    fig, axes = plt.subplots(1, 2 * len(stages) + 1,
                             figsize=(4 * (2 * len(stages) + 1), 3.4))
    for i, stage in enumerate(stages):
        ent, wts = axes[2 * i], axes[2 * i + 1]
        for key, (steps, values) in sorted(series.items()):
            m = KEY.match(key)
            if not m or int(m.group(1)) != stage:
                continue
            ax = ent if m.group(2) == 'entropy' else wts
            ax.plot(steps, values, label=m.group(3))
        if stage in tokens:
            ent.axhline(math.log(tokens[stage]), ls='--', c='grey',
                        label=f'log {tokens[stage]} (uniform)')
        ent.set_title(f'stage {stage}: mixing entropy (nats)', fontsize=9)
        wts.set_title(f'stage {stage}: branch weights', fontsize=9)
        for ax in (ent, wts):
            ax.set_xlabel('iteration')
            ax.legend(fontsize=8)
    steps, values = series.get('loss', ([], []))
    axes[-1].plot(steps, values)
    axes[-1].set_title('loss', fontsize=9)
    axes[-1].set_xlabel('iteration')
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('scalars', help='a run\'s vis_data/scalars.json')
    parser.add_argument('--tokens', type=int, nargs='*', default=[],
                        help='tokens per sequence of each stage, for the '
                        'log N line (e.g. 8 4)')
    parser.add_argument('--out-file', default='diagnostics.png')
    args = parser.parse_args(argv)
    series = load_series(args.scalars)
    fig = plot(series, dict(enumerate(args.tokens)),
               osp.basename(osp.dirname(osp.dirname(args.scalars))))
    save_or_show(fig, args.out_file)
    print(f'Wrote {args.out_file}')


if __name__ == '__main__':
    main()
