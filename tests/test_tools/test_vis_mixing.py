"""Pictures of the mixing weights are right, not only drawn: with the
generator forced to a known mixing, the drawn maps peak at the input token
that mixing names; and tools/visualization/vis_mixing.py draws a PNG for a
real config and checkpoint, or stops with the valid range and no file."""
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

import mmdynamixer  # noqa: F401
from mmdynamixer.models import DynaMixer
from mmdynamixer.visualization import layer_mixing
from mmdx_testing import REPO, TINY, run_tool

TINY_ARGS = {k: v for k, v in TINY.items() if k != 'type'}
BIG = 30.


def force_previous_token(backbone):
    """Every op's generator made to ignore the tokens and send output token
    j the input j - 1 (j = 0: all inputs alike): ``generate``'s weight is
    zero, its bias G[i, j] (i input, j output; index i * N + j) one-hot."""
    for module in backbone.modules():
        if hasattr(module, 'generate') and hasattr(module, 'compress'):
            N = module.num_tokens
            logits = torch.zeros(N, N)
            for j in range(1, N):
                logits[j - 1, j] = BIG
            with torch.no_grad():
                module.generate.weight.zero_()
                module.generate.bias.copy_(logits.flatten())


@pytest.mark.parametrize('sliding,size', [(False, 32), (True, 32),
                                          (True, 72)])
def test_forced_mixing_peaks_at_the_named_token(sliding, size):
    backbone = DynaMixer(**TINY_ARGS, sliding_window=sliding).eval()
    force_previous_token(backbone)
    x = torch.randn(1, 3, size, size)
    for stage in (0, 1):
        mixing = layer_mixing(backbone, x, stage, -1)
        H, W = mixing.grid
        for r, c in [(1, 1), (H - 1, W // 2), (H // 2, W - 1)]:
            col = mixing.token_map((r, c), 'h')
            row = mixing.token_map((r, c), 'w')
            assert torch.argmax(col).item() == (r - 1) * W + c
            assert torch.argmax(row).item() == r * W + c - 1
            assert col.sum().item() == pytest.approx(1, abs=1e-5)
            assert col[r - 1, c] > 0.99  # softmax of BIG against 0
            # nothing outside the token's column / row
            assert col.sum(0)[c].item() == pytest.approx(col.sum().item())
        # token 0 of a column takes from all real inputs of its window
        # alike (padding before the start is never mixed in)
        op = backbone.stages[stage][-1].mixer.mix_h
        N, stride = op.num_tokens, backbone.stages[stage][-1].mixer\
            .window_strides['h']
        real = N if H == N else N - (N - stride) // 2
        weights = mixing.token_map((0, 0), 'h')[:, 0]
        torch.testing.assert_close(weights[:real], torch.full((real, ),
                                                              1 / real))
        assert not weights[real:].any()


def test_maps_are_the_mixing_the_model_applies():
    """The drawn weights are those of the op's forward pass: mixing the
    tokens with them and fusing the segments (``out``) gives the op's
    output."""
    backbone = DynaMixer(**TINY_ARGS, sliding_window=True).eval()
    x = torch.randn(1, 3, 72, 40)
    mixing = layer_mixing(backbone, x, 0, 0)
    block = backbone.stages[0][0].mixer
    captured = {}
    handle = block.register_forward_hook(
        lambda m, a, o: captured.setdefault('x', a[0]))
    with torch.no_grad():
        backbone(x)
    handle.remove()
    t = captured['x']  # (1, H, W, C)
    with torch.no_grad():
        mixed = block.mix_h(t, 1, block.window_strides['h'])
    S = block.mix_h.num_segments
    H, W = mixing.grid
    segments = t[0].reshape(H, W, S, -1)  # (H, W, S, C/S)
    expected = torch.einsum('wsji,iwsc->jwsc', mixing.cols, segments)
    with torch.no_grad():
        expected = block.mix_h.out(expected.reshape(H, W, -1))
    torch.testing.assert_close(mixed[0], expected, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    """A tiny classifier config, a checkpoint of it and an image."""
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    tmp = tmp_path_factory.mktemp('vis')
    cfg = Config.fromfile(osp.join(
        REPO, 'configs/dynamixer/dynamixer-tiny_1xb64_digits.py'))
    model = MODELS.build(cfg.model)
    ckpt = str(tmp / 'tiny.pth')
    torch.save({'state_dict': model.state_dict()}, ckpt)
    other = MODELS.build(dict(
        type='ImageClassifier', backbone=TINY,
        head=dict(type='DynaMixerClsHead', num_classes=3, in_channels=32)))
    wrong = str(tmp / 'other.pth')
    torch.save({'state_dict': other.state_dict()}, wrong)
    image = str(tmp / 'digit.png')
    cv2.imwrite(image, (np.random.default_rng(0).random((8, 8, 3)) *
                        255).astype(np.uint8))
    return dict(tmp=tmp, ckpt=ckpt, wrong=wrong, image=image,
                config=osp.join(REPO, 'configs/dynamixer/'
                                'dynamixer-tiny_1xb64_digits.py'))


TOOL = 'tools/visualization/vis_mixing.py'


def test_tool_writes_a_png(tiny_run, tmp_path):
    out = tmp_path / 'mixing.png'
    proc = run_tool(TOOL, tiny_run['config'], tiny_run['ckpt'],
                    tiny_run['image'], '--stage', '1', '--layer', '1',
                    '--tokens', '0,0', '3,2', '--out-file', str(out))
    assert f'Wrote {out}' in proc.stdout
    image = cv2.imread(str(out))
    assert image is not None and image.shape[0] > 300


@pytest.mark.parametrize('options,message', [
    (['--stage', '2'], '--stage 2 is out of range: the model has 2 stages, '
     'valid are 0..1.'),
    (['--layer', '2'], '--layer 2 is out of range: stage 0 has 2 layers, '
     'valid are 0..1.'),
    (['--tokens', '8,0'], '--tokens 8,0 is outside the 8x8 token grid of '
     'this layer: valid are rows 0..7 and columns 0..7.'),
    (['--segment', '4'], '--segment 4 is out of range: the ops of stage 0 '
     'have 4 segments, valid are 0..3.'),
    (['--cfg-options',
      'test_dataloader.dataset.pipeline.1.scale=[40,40]'],
     'DynaMixer was built for 32x32 inputs'),
    (['CHECKPOINT=wrong'], 'CheckpointMismatchError'),
])
def test_tool_bad_input_names_the_range_and_writes_nothing(
        tiny_run, tmp_path, options, message):
    out = tmp_path / 'mixing.png'
    ckpt = tiny_run['ckpt']
    if options == ['CHECKPOINT=wrong']:
        ckpt, options = tiny_run['wrong'], []
    proc = run_tool(TOOL, tiny_run['config'], ckpt, tiny_run['image'],
                    '--out-file', str(out), *options, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr[-3000:]
    assert not list(tmp_path.iterdir())  # no partial file either
