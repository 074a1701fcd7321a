"""DynaMixer backbone, in the manner of MMPretrain's backbone tests."""
import copy
import os.path as osp

import pytest
import torch
from mmcv.cnn.bricks import DropPath
from mmpretrain.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm  # noqa: F401

import mmdynamixer  # noqa: F401
from mmdynamixer.models import DynaMixer, DynaMixerOp

from mmdx_testing import ABLATIONS, DATA, TINY, TINY_ARCH, run_tool


def build(**overrides):
    cfg = copy.deepcopy(TINY)
    cfg.update(overrides)
    return MODELS.build(cfg)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def test_registered_and_published_archs_build():
    for name in ('s', 'small', 'm', 'medium', 'l', 'large', 'S'):
        model = DynaMixer(arch=name)
        assert len(model.stages) == 2
    assert DynaMixer.parse_arch('s') == DynaMixer.parse_arch('small')


def test_unknown_arch_lists_valid_names():
    with pytest.raises(ValueError) as err:
        DynaMixer(arch='xl')
    for name in ('s', 'm', 'l', 'small', 'medium', 'large'):
        assert repr(name) in str(err.value)


def test_incomplete_arch_lists_missing_keys():
    arch = dict(TINY_ARCH)
    del arch['num_segments'], arch['reduced_dims']
    with pytest.raises(ValueError, match=r"\['num_segments', 'reduced_dims'\]"):
        DynaMixer(arch=arch, img_size=32, patch_size=4)
    with pytest.raises(ValueError, match='unknown keys'):
        DynaMixer(arch=dict(TINY_ARCH, heads=[1, 2]), img_size=32,
                  patch_size=4)
    with pytest.raises(ValueError, match='one entry per stage'):
        DynaMixer(arch=dict(TINY_ARCH, depths=[1]), img_size=32, patch_size=4)
    with pytest.raises(TypeError):
        DynaMixer(arch=['s'])


def test_custom_arch_shapes_and_parameters():
    model = build(out_indices=(0, 1))
    outs = model(torch.rand(2, 3, 32, 32))
    assert [o.shape for o in outs] == [(2, 16, 8, 8), (2, 32, 4, 4)]
    op = model.stages[1][0].mixer.mix_h
    assert (op.num_tokens, op.num_segments, op.reduced_dims) == (4, 8, 3)
    assert op.compress.weight.shape == (8 * 3, 32)
    assert op.generate.weight.shape == (16, 12)
    assert len(model.stages[0]) == 1 and len(model.stages[1]) == 2


@pytest.mark.parametrize('out_indices,expected', [
    (-1, [(1, 32, 4, 4)]),
    (0, [(1, 16, 8, 8)]),
    ((0, 1), [(1, 16, 8, 8), (1, 32, 4, 4)]),
    ([-2, -1], [(1, 16, 8, 8), (1, 32, 4, 4)]),
])
def test_out_indices(out_indices, expected):
    outs = build(out_indices=out_indices)(torch.rand(1, 3, 32, 32))
    assert isinstance(outs, tuple)
    assert [tuple(o.shape) for o in outs] == expected
    assert all(o.is_contiguous() for o in outs)


def test_out_indices_out_of_range():
    with pytest.raises(ValueError, match='out of range'):
        build(out_indices=2)


def test_published_s_shapes_at_224():
    model = DynaMixer(arch='s', out_indices=(0, 1))
    outs = model(torch.rand(1, 3, 224, 224))
    assert [tuple(o.shape) for o in outs] == [(1, 192, 32, 32),
                                              (1, 384, 16, 16)]


def test_fixed_size_error_names_expected_size_and_fix():
    model = build()
    with pytest.raises(ValueError) as err:
        model(torch.rand(1, 3, 48, 32))
    msg = str(err.value)
    assert '32x32' in msg and '48x32' in msg
    assert 'resize or crop' in msg and 'sliding_window=True' in msg
    # the fix as written: the same weights, built with sliding_window=True
    sliding = build(sliding_window=True)
    sliding.load_state_dict(model.state_dict())
    out, = sliding(torch.rand(1, 3, 48, 32))
    assert out.shape == (1, 32, 6, 4)  # 48x32 at stride 8


def test_bad_img_size_for_patch_and_downsampling():
    with pytest.raises(ValueError, match='not a multiple of patch_size'):
        build(img_size=30)
    with pytest.raises(ValueError, match='odd token grid'):
        build(img_size=28)  # 7x7 tokens cannot be halved


def test_frozen_stages():
    model = build(frozen_stages=1)
    model.train()
    frozen = [model.downsample_layers[0], model.stages[0]]
    for module in frozen:
        assert all(not p.requires_grad for p in module.parameters())
        assert all(not m.training for m in module.modules())
    for module in (model.downsample_layers[1], model.stages[1]):
        assert all(p.requires_grad for p in module.parameters())
        assert all(m.training for m in module.modules())
    # frozen parameters do not move under training
    before = [p.clone() for p in model.stages[0].parameters()]
    opt = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=1.)
    model(torch.rand(2, 3, 32, 32))[-1].sum().backward()
    opt.step()
    for b, p in zip(before, model.stages[0].parameters()):
        assert torch.equal(b, p)
    assert all(p.grad is None for p in model.stages[0].parameters())


def test_drop_path_schedule_is_linear_over_all_layers():
    model = build(arch=dict(TINY_ARCH, depths=[2, 3]), drop_path_rate=0.4)
    layers = [layer for stage in model.stages for layer in stage]
    rates = [l.drop_path.drop_prob if isinstance(l.drop_path, DropPath)
             else 0. for l in layers]
    assert rates == pytest.approx([0.4 * i / 4 for i in range(5)])
    s = DynaMixer(arch='s', drop_path_rate=0.1)
    last = s.stages[1][-1].drop_path
    assert last.drop_prob == pytest.approx(0.1)
    assert s.stages[1][0].drop_path.drop_prob == pytest.approx(0.1 * 4 / 17)


def test_default_init_is_published_init():
    """The reference's init: every Linear weight ~ N(0, 0.02) (timm's
    trunc_normal_ truncates at +-2 absolute, 100 standard deviations out, so
    it is a plain normal), zero biases; LayerNorm ones and zeros; convs keep
    PyTorch's default, uniform within 1/sqrt(fan_in)."""
    model = DynaMixer(arch='s')
    model.init_weights()
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear):
            w = m.weight.flatten()
            # within 5%: PyTorch's default (uniform, std 1/sqrt(3 fan_in))
            # is 15% off or more for every layer here; the inverse-CDF
            # sampler of trunc_normal_ itself gives ~1% more than 0.02
            assert abs(w.std().item() / 0.02 - 1) < 0.05, name
            assert abs(w.mean().item()) < 5 * 0.02 / w.numel() ** .5, name
            assert m.bias is None or not m.bias.any(), name
        elif isinstance(m, torch.nn.Conv2d):
            bound = 1 / (m.weight[0].numel()) ** .5
            assert m.weight.abs().max() <= bound, name
            assert m.weight.abs().max() > 0.9 * bound, name  # not N(0, .02)
    for m in model.modules():
        if isinstance(m, torch.nn.LayerNorm):
            assert torch.equal(m.weight, torch.ones_like(m.weight))
            assert not m.bias.any()


def test_pretrained_round_trip_with_prefix(tmp_path):
    classifier = MODELS.build(dict(
        type='ImageClassifier', backbone=TINY,
        head=dict(type='DynaMixerClsHead', num_classes=5, in_channels=32)))
    classifier.init_weights()
    ckpt = tmp_path / 'classifier.pth'
    torch.save({'state_dict': classifier.state_dict(), 'meta': {}}, ckpt)
    for prefix in ('backbone', 'backbone.'):
        model = build(init_cfg=dict(type='Pretrained', checkpoint=str(ckpt),
                                    prefix=prefix))
        model.init_weights()
        x = torch.rand(1, 3, 32, 32)
        classifier.eval(), model.eval()
        torch.testing.assert_close(model(x), classifier.backbone(x))


def test_pretrained_from_another_model_is_an_error(tmp_path):
    other = build(arch=dict(TINY_ARCH, reduced_dims=[1, 1]))
    ckpt = tmp_path / 'other.pth'
    torch.save({'state_dict': other.state_dict()}, ckpt)
    model = build(init_cfg=dict(type='Pretrained', checkpoint=str(ckpt)))
    with pytest.raises(ValueError, match='shape mismatches'):
        model.init_weights()
    model = build(init_cfg=dict(type='Pretrained', checkpoint=str(ckpt),
                                prefix='backbone.'))
    with pytest.raises(ValueError, match="prefix 'backbone.'"):
        model.init_weights()


def test_pretrained_reference_checkpoint_hint(tmp_path):
    """A checkpoint of the authors' code, loaded as it is: the error names
    the converter command, which, as written, makes it load."""
    fixture = torch.load(osp.join(DATA, 'dynamixer_tiny_official.pth'),
                         weights_only=True)
    ckpt, converted = tmp_path / 'official.pth', tmp_path / 'ours.pth'
    torch.save(fixture['state_dict'], ckpt)
    arch = fixture['arch']
    settings = dict(arch=dict(embed_dims=arch['embed_dims'],
                              depths=arch['layers'],
                              num_segments=arch['num_heads'],
                              reduced_dims=arch['reduced_dims']),
                    img_size=56, patch_size=7)
    model = build(**settings, init_cfg=dict(type='Pretrained',
                                            checkpoint=str(ckpt)))
    with pytest.raises(ValueError) as err:
        model.init_weights()
    command = ('python tools/model_converters/dynamixer_to_mmpretrain.py '
               'SRC DST')
    assert command in str(err.value)
    run_tool(command.split()[1], str(ckpt), str(converted))
    model = build(**settings, init_cfg=dict(
        type='Pretrained', checkpoint=str(converted), prefix='backbone.'))
    model.init_weights()


def test_corrupted_pretrained_checkpoint(tmp_path):
    ckpt = tmp_path / 'broken.pth'
    good = tmp_path / 'good.pth'
    torch.save({'state_dict': build().state_dict()}, good)
    ckpt.write_bytes(good.read_bytes()[:1000])
    model = build(init_cfg=dict(type='Pretrained', checkpoint=str(ckpt)))
    with pytest.raises(RuntimeError, match='corrupted or truncated'):
        model.init_weights()


# --- ablations of the paper (Tables 4-7) --------------------------------------
S = DynaMixer.arch_zoo['s']


def op_params(D, N, S_, d, generator='dynamic'):
    if generator == 'dynamic':
        gen = D * S_ * d + S_ * d + N * d * N * N + N * N
    elif generator == 'static':
        gen = N * N
    else:
        gen = D * D + D + D * S_ * N + S_ * N
    return gen + D * D + D


def block_params(D, N, S_, d, generator='dynamic', branches='hwc',
                 reweight=True, share_hw=False):
    ops = ('h' in branches) + ('w' in branches)
    total = op_params(D, N, S_, d, generator) * (1 if share_hw else ops)
    total += D * D if 'c' in branches else 0
    if reweight and len(branches) > 1:
        total += D * (D // 4) + D // 4 + (D // 4) * len(branches) * D \
            + len(branches) * D
    return total + D * D + D  # proj


def backbone_params(arch=S, **switches):
    total = 0
    grids = [32, 16]
    dims_in = [3] + arch['embed_dims'][:-1]
    for i, D in enumerate(arch['embed_dims']):
        k = 7 if i == 0 else 2
        total += dims_in[i] * D * k * k + D
        layer = 4 * D + 2 * 3 * D * D + 3 * D + D  # 2 LN + MLP (ratio 3)
        layer += block_params(D, grids[i], arch['num_segments'][i],
                              arch['reduced_dims'][i], **switches)
        total += arch['depths'][i] * layer
    return total




@pytest.mark.parametrize('switches', ABLATIONS,
                         ids=lambda s: ','.join(f'{k}' for k in s) or 'full')
def test_ablation_switch_parameters_and_training_step(switches):
    kwargs = dict(switches)
    arch = kwargs.pop('arch', S)
    model = DynaMixer(arch=arch, **kwargs)
    expected = backbone_params(
        arch, **{k: ''.join(v) if k == 'branches' else v
                 for k, v in kwargs.items()})
    assert n_params(model) == expected
    # forward and backward on the real 224 model, batch of 1
    out = model(torch.rand(1, 3, 224, 224))[-1]
    assert out.shape == (1, 384, 16, 16)
    out.mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_per_token_generator_is_synthesizer_dense_size():
    # Paper Table 5: the per-token generator makes DynaMixer-S about 32M
    # parameters.
    model = DynaMixer(arch='s', generator='per_token')
    total = n_params(model) + 384 * 2 + 384 * 1000 + 1000  # + head
    assert 32e6 <= total < 33e6


def test_bad_branches():
    with pytest.raises(ValueError, match='subset'):
        build(branches=('h', 'x'))
    with pytest.raises(ValueError, match='subset'):
        build(branches=())
    with pytest.raises(ValueError, match='square token grid'):
        build(img_size=(32, 64), share_hw=True)
