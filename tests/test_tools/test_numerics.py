"""A non-finite loss in float32 training stops the run with the iteration,
the loss terms and the checkpoint to resume from, before the broken weights
are saved; under AMP, skipped steps are counted, not fatal."""
import os.path as osp

import pytest
import torch

from mmdynamixer.engine import NonFiniteLossHook
from mmdx_testing import (make_imagenet, run_tool, stock_tool,
                          write_tiny_imagenet_config)

# epoch 1 trains normally; at epoch 2 the learning rate jumps by 1e30 and
# the weights overflow: a real NaN/inf, not an injected one
EXPLODE = """
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[1],
                        gamma=1e30)]
"""


@pytest.fixture(scope='module', params=['ours', 'mmpretrain'])
def exploded(request, tmp_path_factory):
    """The exploding run, with our tools/train.py and with MMPretrain's
    own (the config's NonFiniteLossHook stops both)."""
    tmp = tmp_path_factory.mktemp('nan')
    data = make_imagenet(str(tmp / 'imagenet'), train_per_class=4)
    config = write_tiny_imagenet_config(tmp / 'explode.py', data,
                                        max_epochs=3, extra=EXPLODE)
    work = tmp / 'work'
    train = 'tools/train.py' if request.param == 'ours' else \
        stock_tool('mmpretrain')
    proc = run_tool(train, config, '--work-dir', str(work), check=False)
    return dict(tmp=tmp, data=data, work=work, proc=proc)


def test_fp32_nan_stops_with_iteration_terms_and_checkpoint(exploded):
    proc, work = exploded['proc'], exploded['work']
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('mmdynamixer.engine.hooks.non_finite_loss_hook.'
                           'NonFiniteLossError: Non-finite loss at iteration '
                           ), last
    # epoch 2 starts at iteration 5 (4 per epoch); its first step explodes
    # the weights, so the loss is non-finite by the second at the latest
    iteration = int(last.split('iteration ')[1].split()[0])
    assert 5 <= iteration <= 8, last
    assert '(epoch 2): loss=' in last and ('nan' in last or 'inf' in last)
    ckpt = osp.join(str(work), 'epoch_1.pth')
    assert last.endswith(
        f'Training stops before these weights are saved. The last complete '
        f'checkpoint is {ckpt}: resume from it with `--resume {ckpt}`, or, '
        'to change the learning rate or the schedule first, start from its '
        f'weights with `--cfg-options load_from={ckpt}`.'), last
    assert not osp.exists(osp.join(str(work), 'epoch_2.pth'))


def test_the_suggested_new_run_from_the_checkpoint_works(exploded):
    """The message's fix for a schedule that diverges: the schedule
    changed, a new run from the checkpoint's weights, exactly as written."""
    calm = write_tiny_imagenet_config(exploded['tmp'] / 'calm.py',
                                      exploded['data'], max_epochs=2)
    ckpt = osp.join(str(exploded['work']), 'epoch_1.pth')
    work = exploded['tmp'] / 'calm'
    run_tool('tools/train.py', calm, '--work-dir', str(work),
             '--cfg-options', f'load_from={ckpt}')
    assert osp.exists(work / 'epoch_2.pth')


@pytest.mark.skipif(not hasattr(torch.amp, 'GradScaler'), reason=(
    'torch < 2.3 has no GradScaler for the CPU (torch.amp.GradScaler); '
    'test_amp_overflow_is_counted_not_fatal checks the rule on a GPU'))
def test_skipped_amp_steps_are_counted_cpu():
    """The rule the hook counts by, on a real GradScaler on the CPU: a
    dynamic scaler lowers its scale exactly on the steps it skips (the
    optimizer does not step), and keeps or raises it otherwise."""
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler('cpu', init_scale=2.**16,
                                  growth_interval=1)
    skipped, counted = 0, 0
    for x in ([1., 2., 3., 4.], [float('inf')] * 4, [1., 1., 1., 1.],
              [float('nan')] * 4):
        before_w = model.weight.detach().clone()
        scale = scaler.get_scale()
        loss = model(torch.tensor([x])).sum()
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        stepped = not torch.equal(before_w, model.weight.detach())
        skipped += not stepped
        counted += NonFiniteLossHook.skipped(scale, scaler.get_scale())
    assert skipped == counted == 2


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason='AmpOptimWrapper needs a GPU (MMEngine refuses '
                    'it on CPU); test_skipped_amp_steps_are_counted_cpu '
                    'covers the counting rule')
def test_amp_overflow_is_counted_not_fatal(tmp_path):
    data = make_imagenet(str(tmp_path / 'imagenet'), train_per_class=4)
    config = write_tiny_imagenet_config(
        tmp_path / 'amp.py', data, max_epochs=2,
        extra="optim_wrapper = dict(type='AmpOptimWrapper', "
        "loss_scale=dict(init_scale=2.**40))\n")
    proc = run_tool('tools/train.py', config, '--work-dir',
                    str(tmp_path / 'work'))
    assert 'AMP skipped the step of iteration 1' in proc.stdout + proc.stderr
