"""tools/deployment/pytorch2onnx.py exports the DynaMixer-S classifier of its
ImageNet config; onnxruntime (CPU) gives PyTorch's scores within 1e-4."""
import numpy as np
import onnx
import onnxruntime as ort
import torch
from mmengine.config import Config

from mmdx_testing import run_tool

CONFIG = 'configs/dynamixer/dynamixer-s_8xb256_in1k.py'


def test_export_s_classifier_matches_pytorch(tmp_path):
    import mmdynamixer  # noqa: F401
    from mmpretrain.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(CONFIG).model).eval()
    for p in model.parameters():  # random weights, far from the init
        torch.nn.init.normal_(p, std=0.02)
    for m in model.modules():  # unit norms: scores of order 1
        if isinstance(m, torch.nn.LayerNorm):
            m.weight.data.fill_(1.)
    ckpt = tmp_path / 's.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    out = tmp_path / 's.onnx'
    proc = run_tool('tools/deployment/pytorch2onnx.py', CONFIG,
                    '--checkpoint', str(ckpt), '--output-file', str(out),
                    '--verify')
    assert 'max abs difference' in proc.stdout
    onnx.checker.check_model(str(out))
    # our own check, independent of the tool's: batch 3, 1000 scores
    x = torch.randn(3, 3, 224, 224)
    session = ort.InferenceSession(str(out),
                                   providers=['CPUExecutionProvider'])
    scores = session.run(None, {'input': x.numpy()})[0]
    with torch.no_grad():
        expected = model(x, mode='tensor').numpy()
    assert scores.shape == (3, 1000)
    # float32 in two kernel libraries (PyTorch's and onnxruntime's), each
    # free to sum in its own order and CPU path: ~1e-6 per layer relative,
    # through 18 layers; 1e-4 on scores of order 1 leaves a wide margin
    assert np.abs(scores - expected).max() <= 1e-4
    assert np.abs(expected).max() > 0.1  # not a trivially small output


def test_checkpoint_of_another_model_is_refused(tmp_path):
    ckpt = tmp_path / 'other.pth'
    torch.save({'state_dict': torch.nn.Linear(3, 4).state_dict()}, ckpt)
    proc = run_tool('tools/deployment/pytorch2onnx.py', CONFIG,
                    '--checkpoint', str(ckpt), '--output-file',
                    str(tmp_path / 'x.onnx'), check=False)
    assert proc.returncode != 0
    assert 'backbone' in proc.stderr and 'Traceback' in proc.stderr
    assert not (tmp_path / 'x.onnx').exists()
