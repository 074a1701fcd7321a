# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""How much each activation checkpointing mode of the DynaMixer backbone
keeps for backward, and what it costs in training speed, against a
straightforward implementation measured in the same run.

For each arch (``--archs``; S, M and L by default, at ``--img-size``), in a
fresh process of its own (so that memory and compiled graphs of one arch do
not weigh on the next), the modes (``--modes``) are built with the same
weights (one state dict loaded into all) and the same classifier end
(``DynaMixerClsHead``, 1000 classes):

- ``reference``: ``mmdynamixer.testing.ReferenceDynaMixer``, the network
  written out plainly in standard PyTorch (the model a user would write);
- ``plain``: ``DynaMixer(selective_cp=False)``, which keeps every
  activation autograd saves;
- ``selective``: ``DynaMixer()``, the default: each layer under
  ``torch.utils.checkpoint`` with the selective policy
  ``keep_channel_matmuls`` (torch >= 2.4; on an older torch it is
  ``plain``);
- ``with_cp``: ``DynaMixer(with_cp=True)``: each layer recomputed in the
  backward pass;
- ``compile`` (only when asked): ``torch.compile`` of the default.

Measured with the functions of ``tools/analysis_tools/benchmark.py``: the
activation memory a training forward keeps for backward (MiB per image),
and training throughput (forward, cross-entropy, backward, AdamW step), the
modes timed in turn in every round (interleaved). Each mode's ratios to the
reference: activations (the quotient) and throughput (the median of the
per-round ratios of the reference's step time to the mode's, so that the
machine's slow spells cancel; above 1 is faster).

Examples:
    python tools/analysis_tools/checkpointing_study.py --threads 2 --batch 8
    python tools/analysis_tools/checkpointing_study.py --archs s \\
        --modes reference selective compile --json study.json
    python tools/analysis_tools/checkpointing_study.py --device cuda \\
        --amp --batch 64
"""
import argparse
import json
import statistics

import torch
import torch.nn as nn
from benchmark import (activation_bytes, amp_dtype, in_fresh_process,
                       machine_info, machine_line, make_train_step,
                       precision_name, throughput_ratio, time_steps)

import mmdynamixer  # noqa: F401 registers DynaMixer
from mmdynamixer.utils import torch_features

MODES = {
    'reference': 'mmdynamixer.testing.ReferenceDynaMixer',
    'plain': 'DynaMixer(selective_cp=False)',
    'selective': 'DynaMixer() (selective_cp=True, the default)',
    'with_cp': 'DynaMixer(with_cp=True)',
    'compile': 'torch.compile(DynaMixer())',
}
DEFAULT_MODES = ['reference', 'plain', 'selective', 'with_cp']


class Classifier(nn.Module):
    """A backbone and a head, as ``ImageClassifier`` runs them: the same
    end for every mode, so that only the backbones differ."""

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x):
        return self.head(self.backbone(x))


def parse_arch(text):
    """``s``, ``m``, ``l`` (or ``small``...), or a JSON object of a custom
    arch (``embed_dims``, ``depths``, ``num_segments``, ``reduced_dims``)."""
    text = text.strip()
    if text.startswith('{'):
        return json.loads(text)
    if text.lower() not in ('s', 'm', 'l', 'small', 'medium', 'large'):
        raise argparse.ArgumentTypeError(
            f'{text!r} is not s, m, l or a JSON object of an arch')
    return text.lower()


def arch_labels(archs):
    """A short name of each arch: its own, or ``custom<i>`` (i-th custom)."""
    labels, custom = [], 0
    for arch in archs:
        if isinstance(arch, str):
            labels.append(arch)
        else:
            labels.append(f'custom{custom}')
            custom += 1
    return labels


def build_models(arch, img_size, patch_size, modes, device, seed=0):
    """The classifier of each mode, all with the weights of one state
    dict (PyTorch's default init, seeded: speed does not care)."""
    from mmpretrain.registry import MODELS

    from mmdynamixer.models import DynaMixer
    from mmdynamixer.testing import ReferenceDynaMixer
    size = dict(img_size=img_size, patch_size=patch_size)
    dims = DynaMixer.parse_arch(arch)['embed_dims'][-1]

    def classifier(backbone):
        head = MODELS.build(dict(type='DynaMixerClsHead', num_classes=1000,
                                 in_channels=dims))
        return Classifier(backbone, head)

    backbones = dict(
        reference=lambda: ReferenceDynaMixer(arch, **size),
        plain=lambda: DynaMixer(arch, selective_cp=False, **size),
        selective=lambda: DynaMixer(arch, **size),
        with_cp=lambda: DynaMixer(arch, with_cp=True, **size),
        compile=lambda: DynaMixer(arch, **size))
    torch.manual_seed(seed)
    state = classifier(DynaMixer(arch, **size)).state_dict()
    models = {}
    for mode in modes:
        model = classifier(backbones[mode]())
        model.load_state_dict(state)
        model.to(device)
        models[mode] = torch.compile(model) if mode == 'compile' else model
    return models


def study_arch(arch, label, options):
    """The rows of one arch: each mode's measurements, then its ratios to
    the reference. Run it :func:`in_fresh_process`."""
    if options['threads']:
        torch.set_num_threads(options['threads'])
    device, dtype = options['device'], options['dtype']
    batch, (h, w) = options['batch'], options['img_size']
    modes = options['modes']
    models = build_models(arch, (h, w), options['patch_size'], modes,
                          device)
    torch.manual_seed(0)
    x = torch.randn(batch, 3, h, w, device=device)
    steps = [make_train_step(models[m], x, device, dtype) for m in modes]
    times = time_steps(steps, options['repeats'], options['warmup'])
    rows = []
    for mode, record in zip(modes, times):
        seconds = statistics.median(record)
        rows.append(dict(
            arch=label, mode=mode,
            activation_mib_per_image=activation_bytes(
                models[mode], x, device, dtype) / batch / 2**20,
            train_samples_per_sec=batch / seconds,
            train_step_time_ms=seconds * 1e3,
            train_round_times_s=record))
    ref, ref_times = rows[0], times[0]
    for row, record in zip(rows[1:], times[1:]):
        rows.append(dict(
            arch=label, mode=f'{row["mode"]}/reference',
            activation_ratio=row['activation_mib_per_image'] /
            ref['activation_mib_per_image'],
            train_throughput_ratio=throughput_ratio(ref_times, record)))
    return rows


def print_rows(rows):
    for r in rows:
        if '/' in r['mode']:
            print(f'{r["arch"]:7} {r["mode"]:20} '
                  f'{r["activation_ratio"]:12.3f}x '
                  f'{r["train_throughput_ratio"]:12.3f}x')
        else:
            print(f'{r["arch"]:7} {r["mode"]:20} '
                  f'{r["activation_mib_per_image"]:13.2f} '
                  f'{r["train_samples_per_sec"]:13.2f} '
                  f'{r["train_step_time_ms"]:11.1f}')
    print(flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=' '.join(__doc__.split('\n\n')[0].split()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__[__doc__.index('Examples:'):])
    parser.add_argument('--archs', nargs='+', type=parse_arch,
                        default=['s', 'm', 'l'],
                        help="'s', 'm', 'l' or a JSON object of a custom "
                        'arch (default: s m l)')
    parser.add_argument('--modes', nargs='+', choices=list(MODES),
                        default=DEFAULT_MODES,
                        help='modes to measure; reference always runs '
                        f'(default: {" ".join(DEFAULT_MODES)})')
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--patch-size', type=int, default=7)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--threads', type=int, default=None,
                        help="torch's intra-op threads (default: torch's)")
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--amp', nargs='?', const='auto',
                        choices=['auto', 'bf16', 'fp16'],
                        help='autocast on CUDA (alone: bf16 where supported, '
                        'else fp16)')
    parser.add_argument('--warmup', type=int, default=1,
                        help='untimed steps of each mode first (default: 1)')
    parser.add_argument('--repeats', type=int, default=7,
                        help='interleaved timing rounds (default: 7)')
    parser.add_argument('--json', help='also write the results to this file')
    args = parser.parse_args(argv)
    if args.amp and not args.device.startswith('cuda'):
        parser.error('--amp is autocast on CUDA; on CPU this tool runs '
                     'float32 only')
    if args.threads:
        torch.set_num_threads(args.threads)
    modes = ['reference'] + [m for m in MODES if m in args.modes and
                             m != 'reference']
    options = dict(device=args.device, dtype=amp_dtype(args.device,
                                                       args.amp),
                   batch=args.batch, img_size=(args.img_size, ) * 2,
                   patch_size=args.patch_size, modes=modes,
                   threads=args.threads, warmup=args.warmup,
                   repeats=args.repeats)
    info = machine_info(args.device)
    precision = precision_name(options['dtype'])
    print(f'DynaMixer activation checkpointing study: {machine_line(info)}, '
          f'{precision}; batch {args.batch} at {args.img_size}x'
          f'{args.img_size}; training steps (forward, cross-entropy, '
          f'backward, AdamW) timed in {args.repeats} interleaved rounds '
          f'after {args.warmup} warm-up step(s); each arch in a fresh '
          'process')
    for mode in modes:
        print(f'  {mode:10} {MODES[mode]}')
    if not torch_features.SELECTIVE_CHECKPOINT:
        print('  (this torch has no selective activation checkpointing, '
              'torch >= 2.4: selective keeps what plain keeps)')
    labels = arch_labels(args.archs)
    for arch, label in zip(args.archs, labels):
        if not isinstance(arch, str):
            print(f'  {label}: {json.dumps(arch)}')
    print(f'{"arch":7} {"mode":20} {"act MiB/img":>13} {"train img/s":>13} '
          f'{"step ms":>11}', flush=True)
    rows = []
    for arch, label in zip(args.archs, labels):
        arch_rows = in_fresh_process(args.device, study_arch, arch, label,
                                     options)
        print_rows(arch_rows)
        rows += arch_rows
    print('ratio rows (mode/reference): activations kept for backward, and '
          'training throughput (median of per-round ratios; above 1 is '
          'faster)')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(**info, precision=precision, batch=args.batch,
                           img_size=args.img_size,
                           patch_size=args.patch_size, warmup=args.warmup,
                           repeats=args.repeats, modes=modes,
                           archs=dict(zip(labels, args.archs)), rows=rows),
                      f, indent=2)


if __name__ == '__main__':
    main()
