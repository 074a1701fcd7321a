"""Mixed precision on the CPU: the capability check reads the CPU's flags
as documented; CPUBf16OptimWrapper trains the Quick start's config in bf16
autocast with finite losses and float32 weights that change; the
Inferencer under CPU autocast runs in bf16; bf16 outputs stay within a
bound derived from bf16's precision of float32's."""
import glob
import math
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmdynamixer.utils.cpu_bf16 import cpu_bf16_support
from mmdx_testing import DIGITS_CONFIG, REPO, TINY_ARCH, digits_data_options

CPUINFO = '''processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: Some CPU
flags\t\t: fpu vme sse sse2 avx avx2 avx512f {extra}

processor\t: 1
flags\t\t: fpu vme sse sse2 avx avx2 avx512f {extra}
'''


@pytest.mark.parametrize('extra,expected', [
    ('avx512_bf16', (True, 'the CPU has avx512_bf16')),
    ('amx_tile amx_bf16 avx512_bf16',
     (True, 'the CPU has avx512_bf16 and amx_bf16')),
    ('amx_int8', (False, 'the CPU has none of avx512_bf16, amx_bf16 (bf16 '
                  'would run emulated, slower than float32)')),
])
def test_capability_from_the_cpu_flags(tmp_path, extra, expected):
    cpuinfo = tmp_path / 'cpuinfo'
    cpuinfo.write_text(CPUINFO.format(extra=extra))
    assert cpu_bf16_support(str(cpuinfo)) == expected


def test_capability_without_cpuinfo_is_no(tmp_path, monkeypatch):
    monkeypatch.setenv('MMDYNAMIXER_CPUINFO', str(tmp_path / 'none'))
    supported, why = cpu_bf16_support()
    assert not supported and why.startswith('no CPU flags could be read')


def test_the_wrapper_trains_the_digits_config_in_bf16(tmp_path):
    """The Quick start's config, its first three batches (192 images)."""
    from mmdynamixer.datasets import prepare_digits
    root = str(tmp_path / 'digits')
    prepare_digits(root)
    config = osp.join(REPO, DIGITS_CONFIG)
    data = digits_data_options(root)
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(dict(option.split('=', 1) for option in data))
    cfg.merge_from_dict({'train_dataloader.dataset.dataset.indices': 192,
                         'train_cfg.max_epochs': 1,
                         'optim_wrapper.type': 'CPUBf16OptimWrapper',
                         'work_dir': str(tmp_path / 'work')})
    runner = Runner.from_cfg(cfg)
    before = {k: v.clone() for k, v in runner.model.state_dict().items()}
    dtypes = []
    runner.model.head.fc.register_forward_hook(
        lambda m, i, o: dtypes.append(o.dtype) if m.training else None)
    runner.train()
    assert dtypes == [torch.bfloat16] * 3  # every training forward in bf16
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == 3 and all(math.isfinite(l) for l in losses)
    after = runner.model.state_dict()
    for key, value in after.items():
        if value.is_floating_point():
            assert value.dtype == torch.float32, key  # master weights
    changed = [k for k in before if before[k].is_floating_point()
               and not torch.equal(before[k], after[k])]
    assert len(changed) > len(before) // 2

    # the Inferencer under CPU autocast (tools/test.py --amp:
    # tests/test_tools/test_amp_accuracy.py)
    checkpoint = str(tmp_path / 'work' / 'epoch_1.pth')
    from mmpretrain import ImageClassificationInferencer
    inferencer = ImageClassificationInferencer(config, pretrained=checkpoint)
    dtypes.clear()
    inferencer.model.head.fc.register_forward_hook(
        lambda m, i, o: dtypes.append(o.dtype))
    image = sorted(glob.glob(osp.join(root, 'test', '*', '*.png')))[0]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        result = inferencer(image)[0]
    assert dtypes == [torch.bfloat16]
    assert np.isfinite(result['pred_scores']).all()
    assert abs(float(result['pred_scores'].sum()) - 1) < 1e-2


def test_bf16_outputs_stay_within_the_bound_of_bf16():
    """The logits of a small DynaMixer under bf16 autocast against float32.
    bf16 keeps 8 significant bits (unit roundoff u = 2**-8); each of the
    ``k`` products in bf16 on the path from the input to a logit (per
    layer: compress, mixing and out of two branches, the channel branch,
    the projection, fc1, fc2; then the head) adds at most about u of
    relative error, so the error relative to the logits' scale stays below
    ``k * u``. It is also above 0: autocast really ran in bf16."""
    from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='DynaMixer', arch=TINY_ARCH, img_size=32,
                      patch_size=4),
        head=dict(type='DynaMixerClsHead', num_classes=10,
                  in_channels=TINY_ARCH['embed_dims'][-1]))).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        reference = model(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            bf16 = model(x)
    layers = sum(TINY_ARCH['depths'])
    k = 10 * layers + 2  # the products of each layer, the stem and the head
    error = (bf16.float() - reference).abs().max() / reference.abs().max()
    assert 0 < error < k * 2**-8, (error, k * 2**-8)
