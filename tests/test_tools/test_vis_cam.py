"""tools/visualization/vis_cam.py: LayerCAM and Grad-CAM on a DynaMixer
classifier's channels-last layers, with bad input named and no partial
file; tools/analysis_tools/cam_localization.py's measure and its bad input.
(That the map is right, on a trained model and real digits, is checked in
test_embedded_default.py.)"""
import re

import cv2
import numpy as np
import pytest
import torch

import mmdynamixer  # noqa: F401
from mmdynamixer.models import DynaMixer
from mmdynamixer.visualization import cam_on_image, grad_cam
from mmdx_testing import REPO, TINY, run_tool

TOOL = 'tools/visualization/vis_cam.py'
CONFIG = f'{REPO}/configs/dynamixer/dynamixer-tiny_1xb64_digits.py'


class OneChannelClassifier(torch.nn.Module):
    """Class score = the mean of channel 0 of the last layer over the
    grid's left half: only channel 0 has gradient, and only on the left
    half."""

    def __init__(self):
        super().__init__()
        self.backbone = DynaMixer(**{k: v for k, v in TINY.items()
                                     if k != 'type'})

    def forward(self, x, mode='tensor'):
        features = {}
        handle = self.backbone.stages[-1][-1].register_forward_hook(
            lambda m, a, o: features.setdefault('x', o))
        self.backbone(x)
        handle.remove()
        t = features['x']  # (B, H, W, C)
        W = t.shape[2]
        left = t[:, :, :W // 2, 0].mean(dim=(1, 2))
        return torch.stack([left, -left], -1)


@pytest.mark.parametrize('method', ['gradcam', 'layercam', 'LayerCAM'])
def test_cam_follows_the_gradient_layout(method):
    torch.manual_seed(0)
    model = OneChannelClassifier().eval()
    layer = model.backbone.stages[-1][-1]
    x = torch.randn(1, 3, 32, 32)
    cam, category, score = grad_cam(model, x, layer, category=0,
                                    method=method)
    features = {}
    handle = layer.register_forward_hook(
        lambda m, a, o: features.setdefault('x', o.detach()))
    model.backbone(x)
    handle.remove()
    # d score / d A[h, w, 0] = 1 / (H * W/2) on the left half, 0 elsewhere
    # and for other channels. Grad-CAM's channel weights are then
    # (1 / (H * W), 0, ..., 0): relu(channel 0) over the whole grid;
    # LayerCAM weighs each position by its own gradient: relu(channel 0)
    # on the left half, 0 on the right.
    a = torch.relu(features['x'][0, :, :, 0])
    if method == 'gradcam':
        expected = a / a.max()
    else:
        a[:, a.shape[1] // 2:] = 0
        expected = a / a.max()
    torch.testing.assert_close(cam, expected, rtol=1e-4, atol=1e-6)
    up = cam_on_image(cam, (32, 32), 8)
    assert up.shape == (32, 32)
    with pytest.raises(ValueError, match='--target-category 2 is out of '
                       'range: the model has 2 classes, valid are 0..1.'):
        grad_cam(model, x, layer, category=2)


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    tmp = tmp_path_factory.mktemp('cam')
    model = MODELS.build(Config.fromfile(CONFIG).model)
    ckpt = str(tmp / 'digits.pth')
    torch.save({'state_dict': model.state_dict()}, ckpt)
    image = str(tmp / 'digit.png')
    cv2.imwrite(image, (np.random.default_rng(0).random((8, 8)) *
                        255).astype(np.uint8))
    return dict(ckpt=ckpt, image=image)


def test_vis_cam_writes_a_png(files, tmp_path):
    out = tmp_path / 'cam.png'
    proc = run_tool(TOOL, files['image'], CONFIG, files['ckpt'],
                    '--target-layers', 'backbone.stages.0.1',
                    '--save-path', str(out))
    assert 'LayerCAM of class' in proc.stdout
    assert 'at backbone.stages.0.1' in proc.stdout
    assert cv2.imread(str(out)) is not None


@pytest.mark.parametrize('options,message', [
    (['--target-layers', 'backbone.stages.2.0'],
     "--target-layers 'backbone.stages.2.0' is not a DynaMixer layer of "
     'this model: valid are backbone.stages.0.0 .. backbone.stages.1.1'),
    (['--target-category', '10'], '--target-category 10 is out of range: '
     'the model has 10 classes, valid are 0..9.'),
    (['--method', 'eigencam'], "--method 'eigencam' is not supported for "
     'DynaMixer: valid are layercam, gradcam'),
    (['--cfg-options',
      'test_dataloader.dataset.pipeline.1.scale=[40,40]'],
     'DynaMixer was built for 32x32 inputs'),
])
def test_vis_cam_bad_input_names_the_range_and_writes_nothing(
        files, tmp_path, options, message):
    out = tmp_path / 'cam.png'
    proc = run_tool(TOOL, files['image'], CONFIG, files['ckpt'],
                    '--save-path', str(out), *options, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr[-3000:]
    assert not list(tmp_path.iterdir())


def test_foreground_ratio_is_the_map_per_object_pixel_over_background():
    from mmdynamixer.visualization import foreground_ratio
    image = np.zeros((4, 4, 3), np.uint8)
    image[:2] = 200  # the object: the top half
    cam = np.ones((4, 4))
    assert foreground_ratio(cam, image, 96) == 1  # ignores the object
    cam[:2] = 3
    assert foreground_ratio(cam, image, 96) == 3
    assert np.isnan(foreground_ratio(cam, image, 250))  # no foreground


LOCALIZATION = 'tools/analysis_tools/cam_localization.py'


def test_cam_localization_counts_each_class_folder(files, tmp_path):
    """Each method's line counts the first --per-class images of each
    class folder (a random model: which it classifies right is chance)."""
    for cls in ('3', '7'):
        (tmp_path / cls).mkdir()
        for i in range(3):
            image = np.zeros((8, 8), np.uint8)
            image[2:6, 3:5] = 255
            cv2.imwrite(str(tmp_path / cls / f'{i}.png'), image)
    out = run_tool(LOCALIZATION, CONFIG, files['ckpt'], str(tmp_path),
                   '--per-class', '2', '--methods', 'gradcam').stdout
    assert 'at backbone.stages.1.1' in out
    assert re.search(r'^gradcam: \d of 4 classified right; median ', out,
                     re.M), out
    assert 'layercam' not in out


@pytest.mark.parametrize('folders,message', [
    (None, 'Image folder not found'),
    (['3', 'cat'], 'should hold one folder per class of the model, named '
     '0, 1, 2, 3, 4, 5, 6, 7, 8, 9; found cat.'),
])
def test_cam_localization_names_a_wrong_image_folder(files, tmp_path,
                                                     folders, message):
    root = tmp_path / 'images'
    for name in folders or []:
        (root / name).mkdir(parents=True)
    proc = run_tool(LOCALIZATION, CONFIG, files['ckpt'], str(root),
                    check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
