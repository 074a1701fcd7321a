"""The backbone computes what the reference DynaMixer computes
(mmdynamixer.testing.ReferenceDynaMixer: the paper and the authors' code
written out plainly, importing nothing from the package), in training, with
stochastic depth, for S/M/L, every ablation switch, the sliding-window mode
and the backbone's memory-saving modes; and the reference reproduces the
output of the authors' own code (tests/data/dynamixer_tiny_official.pth).

The backbone is reached only through its constructor and forward/backward:
both models are built with the same arguments, the backbone's (randomised)
state dict is loaded into the reference, both run the same input with the
same seed (so that stochastic depth drops the same samples), and the
outputs, the gradients of every parameter (by name) and of the input must
agree.

Both run in float64, so that the check is tight and holds on any CPU: the two
implementations may sum in different orders (fused branches, reordered
generator weights), which float64 rounds at ~1e-16 relative per operation.
Through ~40 layers of sums over up to ~10^4 terms that stays below ~1e-11 of
each tensor's scale; the bound, 1e-9 of the scale (the largest magnitude),
leaves two orders of margin and is still ~10^4 times tighter than float32
could be checked on one CPU. It also sees the stochastic-depth rates: layer
``i`` of ``n`` drops with ``rate * i / (n - 1)`` in double precision (the
authors' Python floats); rates rounded to float32 (``torch.linspace``'s
default dtype) scale the kept branches by ``1 / (1 - rate)`` wrong by ~1e-8
relative, ~10 times the bound."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F

from mmdynamixer.apis import convert_official
from mmdynamixer.models import DynaMixer
from mmdynamixer.testing import ReferenceDynaMixer
from mmdx_testing import ABLATIONS, DATA

TOLERANCE = 1e-9  # of each tensor's largest magnitude (see above)
SMALL = dict(arch=dict(embed_dims=[16, 32], depths=[2, 2],
                       num_segments=[4, 8], reduced_dims=[2, 2]),
             img_size=64, patch_size=4)  # 16x16, then 8x8 tokens
# DynaMixer-S's stages (windows of 32 and 16 tokens at 224 px) with 2 + 2
# layers: what every switch and window does, at a fraction of the time; the
# published depths are checked at 224 px and in the memory-saving modes
S_SHALLOW = dict(embed_dims=[192, 384], depths=[2, 2], num_segments=[8, 16],
                 reduced_dims=[2, 2])


def case_id(switches):
    """``key=value`` of each switch; of an arch, the settings that differ
    from DynaMixer-S's."""
    parts = []
    for key, value in switches.items():
        if key == 'arch':
            parts += [f'{k}={v}' for k, v in value.items()
                      if k != 'depths' and v != S_SHALLOW[k]]
        else:
            parts.append(f'{key}={value}')
    return ','.join(parts) or 'full'


def size_id(hw):
    return f'{hw[0]}x{hw[1]}'


def shallow(switches):
    """An ablation of DynaMixer-S (``mmdx_testing.ABLATIONS``) on
    :data:`S_SHALLOW`."""
    arch = dict(switches.get('arch', S_SHALLOW), depths=S_SHALLOW['depths'])
    return dict(switches, arch=arch)


def randomise(model):
    """Weights far from the init, with sharp mixing: generator weights
    large enough that the softmaxes are far from uniform, LayerNorm weights
    around 1 (not 0, which would shrink every branch to its bias)."""
    for name, p in model.named_parameters():
        if 'norm' in name and name.endswith('weight'):
            torch.nn.init.normal_(p, mean=1., std=0.1)
        elif '.generate.' in name or name.endswith('.logits'):
            torch.nn.init.normal_(p, std=0.3)
        else:
            torch.nn.init.normal_(p, std=0.02)
    return model


def assert_close_to_scale(actual, expected, name):
    assert actual is not None and expected is not None, name
    assert actual.shape == expected.shape, (name, actual.shape,
                                            expected.shape)
    scale = expected.abs().max()
    if scale == 0:  # a branch that drop path dropped for the whole batch
        assert not actual.any(), name
        return
    error = (actual - expected).abs().max()
    assert error <= TOLERANCE * scale, f'{name}: {error:.3g} > ' \
        f'{TOLERANCE:g} x {scale:.3g}'


def build_pair(kwargs, **model_only):
    """The backbone (with ``model_only`` arguments too) and the reference,
    both float64 in training mode, holding the same random weights."""
    torch.manual_seed(0)
    ours = randomise(DynaMixer(**kwargs, **model_only)).double().train()
    with torch.device('meta'):  # no time spent on an init to overwrite
        ref = ReferenceDynaMixer(**kwargs)
    state = {k: v.clone() for k, v in ours.state_dict().items()}
    ref.load_state_dict(state, strict=True, assign=True)
    return ours, ref.train()


def run(model, x, grad, seed):
    """``model``'s last output for ``x`` and the gradients of its
    parameters and of ``x``, for the output gradient ``grad(output)``."""
    x = x.clone().requires_grad_()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    out = model(x)[-1]
    out.backward(grad(out))
    grads = {name: p.grad for name, p in model.named_parameters()}
    return out.detach(), grads, x.grad


def assert_same(ours, ref, x, seed=1):
    x = x.double()
    grad = torch.Generator().manual_seed(2)
    out, grads, x_grad = run(
        ours, x, lambda o: torch.randn(o.shape, generator=grad,
                                       dtype=o.dtype), seed)
    grad.manual_seed(2)
    expected, ref_grads, ref_x_grad = run(
        ref, x, lambda o: torch.randn(o.shape, generator=grad,
                                      dtype=o.dtype), seed)
    assert_close_to_scale(out, expected, 'output')
    assert set(grads) == set(ref_grads)
    for name, g in grads.items():
        assert_close_to_scale(g, ref_grads[name], name)
    assert_close_to_scale(x_grad, ref_x_grad, 'input')
    return out


def assert_same_numbers(kwargs, x, **model_only):
    kwargs = dict(dict(drop_path_rate=0.3), **kwargs)
    ours, ref = build_pair(kwargs, **model_only)
    return assert_same(ours, ref, x)


@pytest.mark.parametrize('arch', ['s', 'm', 'l'])
def test_published_models(arch):
    """At 224 px, with stochastic depth (training mode, rate 0.5): the two
    draw the same masks, so they drop the same residual branches. Batch 1:
    float64 S/M/L are heavy on a small CPU."""
    assert_same_numbers(dict(arch=arch, drop_path_rate=0.5),
                        torch.randn(1, 3, 224, 224))


@pytest.mark.parametrize('switches', ABLATIONS, ids=case_id)
def test_ablations(switches):
    # S's layers at 112 x 112 (16 x 16, then 8 x 8 tokens): every switch's
    # code at a quarter of the tokens; the published size is tested above
    assert_same_numbers(dict(shallow(switches), img_size=112),
                        torch.randn(2, 3, 112, 112))


@pytest.mark.parametrize('generator', ['dynamic', 'static', 'per_token'])
@pytest.mark.parametrize('hw', [(126, 182), (97, 333), (45, 30),
                                (224, 266), (224, 224)], ids=size_id)
def test_sliding_mode(generator, hw):
    """DynaMixer-S's stages (windows of 32 and 16 tokens) at other sizes:
    padded images (97, 333, 45, 30 are no multiples of 14), windows with
    padding at both ends, sequences shorter than one window (45 x 30: 4 x 3
    tokens in stage 1), one side at the window length, mixed whole (224),
    and the pretrained size, where the sliding model is the fixed one."""
    assert_same_numbers(dict(arch=S_SHALLOW, sliding_window=True,
                             generator=generator),
                        torch.randn(1, 3, *hw))


@pytest.mark.parametrize('stride', [0.3, 1.0, [7, 16]], ids=str)
def test_sliding_mode_strides(stride):
    """Other strides on DynaMixer-S: 0.3 (10 and 5 tokens, margins 11 and
    5), disjoint windows (1.0), one int per stage (7: margin 12; 16: the
    whole window of stage 2)."""
    assert_same_numbers(dict(arch=S_SHALLOW, sliding_window=True,
                             window_stride=stride),
                        torch.randn(1, 3, 126, 182))


@pytest.mark.parametrize('hw', [(52, 100), (20, 36), (64, 64), (68, 130)],
                         ids=size_id)
def test_sliding_strides_on_a_small_model(hw):
    """Windows of 16 and 8 tokens, fractional and per-stage strides, at
    sizes that are no multiple of the window (52 x 100), shorter than a
    window (20 x 36), the window itself (64 x 64) and just past it."""
    for stride in (0.25, 0.5, 1.0, [3, 2], [16, 8], [1, 1]):
        assert_same_numbers(dict(SMALL, sliding_window=True,
                                 window_stride=stride),
                            torch.randn(2, 3, *hw))


MODES = [dict(selective_cp=False), dict(with_cp=True),
         dict(with_cp=True, selective_cp=False)]
CONFIGS = [dict(), dict(generator='static'), dict(generator='per_token'),
           dict(branches=('h', 'c')), dict(reweight=False),
           dict(share_hw=True), dict(sliding_window=True),
           dict(sliding_window=True, generator='per_token',
                window_stride=[5, 3])]


@pytest.mark.parametrize('mode', MODES, ids=case_id)
@pytest.mark.parametrize('config', CONFIGS, ids=case_id)
def test_memory_saving_modes(mode, config):
    """The backbone's memory-saving modes (activation checkpointing, its
    selective recomputation switched off) compute the same function, with
    stochastic depth recomputed the same."""
    size = (44, 90) if config.get('sliding_window') else (64, 64)
    assert_same_numbers(dict(SMALL, drop_path_rate=0.5, **config),
                        torch.randn(2, 3, *size), **mode)


@pytest.mark.parametrize('mode', MODES, ids=case_id)
def test_memory_saving_modes_on_s(mode):
    """DynaMixer-S's 18 layers, at 112 px."""
    assert_same_numbers(dict(img_size=112, drop_path_rate=0.5),
                        torch.randn(2, 3, 112, 112), **mode)


def test_drop_path_same_seed_same_result():
    """In training mode a seed decides which samples drop which branches:
    another seed gives another output, the same seed the same one, in the
    backbone and the reference alike; in eval mode nothing drops."""
    ours, ref = build_pair(dict(SMALL, drop_path_rate=0.5))
    x = torch.randn(4, 3, 64, 64)
    first = assert_same(ours, ref, x, seed=1)
    second = assert_same(ours, ref, x, seed=2)
    assert not torch.equal(first, second)
    again = assert_same(ours, ref, x, seed=1)
    assert torch.equal(first, again)
    ours.eval()
    ref.eval()
    with torch.no_grad():
        torch.manual_seed(1)
        out = ours(x.double())[-1]
        torch.manual_seed(2)
        assert torch.equal(ours(x.double())[-1], out)
        assert_close_to_scale(out, ref(x.double())[0], 'eval output')
    assert_same(ours, ref, x, seed=3)  # eval mode, with gradients


def official_to_reference(state):
    """The authors' keys (``patch_embed.proj``, ``network.<i>``: lists of
    blocks, a downsampling conv as an entry of its own) mapped onto the
    reference's (``downsample_layers.<i>``, ``stages.<i>.<j>``)."""
    out = {'downsample_layers.0.' + k.split('.')[-1]: v
           for k, v in state.items() if k.startswith('patch_embed.proj.')}
    stage, block = 0, 0
    entries = sorted({int(k.split('.')[1]) for k in state
                      if k.startswith('network.')})
    for i in entries:
        keys = [k for k in state if k.startswith(f'network.{i}.')]
        if f'network.{i}.proj.weight' in state:  # a downsampling entry
            stage, block = stage + 1, 0
            for k in keys:
                out[f'downsample_layers.{stage}.' + k.split('.')[-1]] = \
                    state[k]
            continue
        for k in keys:
            _, _, j, rest = k.split('.', 3)
            if rest.startswith('attn.'):
                rest = 'mixer.' + rest[len('attn.'):]
            out[f'stages.{stage}.{block + int(j)}.{rest}'] = state[k]
        block += 1 + max(int(k.split('.')[2]) for k in keys)
    return out


def test_reference_reproduces_the_authors_output():
    """The fixture: a small model of the authors' code with perturbed
    weights, an input and the logits their code computed in float64. The
    package's converter gives the backbone the same state dict."""
    fixture = torch.load(osp.join(DATA, 'dynamixer_tiny_official.pth'),
                         weights_only=True)
    arch, state = fixture['arch'], fixture['state_dict']
    ref = ReferenceDynaMixer(
        dict(embed_dims=arch['embed_dims'], depths=arch['layers'],
             num_segments=arch['num_heads'],
             reduced_dims=arch['reduced_dims']),
        img_size=56, patch_size=arch['patch_size'],
        mlp_ratio=arch['mlp_ratios'][0]).double().eval()
    mapped = official_to_reference(state)
    ref.load_state_dict(mapped, strict=True)
    converted = {k[len('backbone.'):]: v
                 for k, v in convert_official(state)[0].items()
                 if k.startswith('backbone.')}
    assert converted.keys() == mapped.keys()
    assert all(torch.equal(converted[k], v) for k, v in mapped.items())
    norm_w, norm_b, head_w, head_b = (state[k].double() for k in (
        'norm.weight', 'norm.bias', 'head.weight', 'head.bias'))
    with torch.no_grad():
        tokens = ref(fixture['input'].double())[0].flatten(2).transpose(1, 2)
        tokens = F.layer_norm(tokens, tokens.shape[-1:], norm_w, norm_b,
                              1e-5)
        logits = F.linear(tokens.mean(1), head_w, head_b)
    assert (logits - fixture['output']).abs().max().item() < 1e-10
