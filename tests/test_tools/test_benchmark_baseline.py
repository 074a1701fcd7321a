"""The benchmark's baseline (SPEC sections 1-3 transcribed in standard
PyTorch) computes what our backbone computes, in float32: outputs to 1e-5,
and each parameter's gradient to 1e-5 of that tensor's largest gradient
(the stem's gradients reach ~70 after 18 layers of backpropagation, where
float32 summation order alone moves them by ~1e-5 in absolute terms)."""
import importlib.util
import os.path as osp

import pytest
import torch

from mmdynamixer.models import DynaMixer
from mmdx_testing import REPO


def load_benchmark():
    spec = importlib.util.spec_from_file_location(
        'benchmark', osp.join(REPO, 'tools/analysis_tools/benchmark.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('arch', ['s', 'm', 'l'])
def test_baseline_equals_backbone(arch):
    benchmark = load_benchmark()
    torch.manual_seed(0)
    ours = DynaMixer(arch)
    for p in ours.parameters():  # random weights, far from the init
        torch.nn.init.normal_(p, std=0.02)
    base = benchmark.BaselineDynaMixer(arch)
    base.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2 if arch == 's' else 1, 3, 224, 224)
    out, ref = ours(x)[0], base(x)[0]
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(out)
    out.backward(grad)
    ref.backward(grad)
    for (name, p), q in zip(ours.named_parameters(), base.parameters()):
        scale = q.grad.abs().max()
        assert scale > 0, name
        assert (p.grad - q.grad).abs().max() <= 1e-5 * scale, name
