"""Every config in configs/ builds its model, dataloaders and optimizer with
the real MMEngine Runner and MMPretrain datasets (on small generated data in
each data set's own format) and trains 2 iterations, then validates."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

import mmdynamixer  # noqa: F401
from mmdx_testing import REPO, make_cifar, make_imagenet

ALL_CONFIGS = sorted(
    osp.relpath(p, REPO)
    for p in glob.glob(osp.join(REPO, 'configs', '*', '*.py'))
    if '_base_' not in p)
# MMDetection and MMSegmentation configs run in test_det_seg.py
DET_SEG = ('configs/dynamixer_detection/', 'configs/dynamixer_segmentation/')
CONFIGS = [c for c in ALL_CONFIGS if not c.startswith(DET_SEG)]


def test_every_config_is_tested():
    from mmengine.config import Config
    for config in ALL_CONFIGS:
        scope = Config.fromfile(osp.join(REPO, config)).default_scope
        tested_here = config in CONFIGS
        assert tested_here == (scope == 'mmpretrain'), config
        assert tested_here or scope in ('mmdet', 'mmseg'), config


def test_config_list_is_complete():
    names = {osp.basename(c) for c in CONFIGS}
    for expected in ('dynamixer-s_8xb256_in1k.py', 'dynamixer-m_8xb128_in1k.py',
                     'dynamixer-l_8xb64_in1k.py',
                     'dynamixer-s_1xb128_cifar10.py',
                     'dynamixer-s_1xb128_cifar100.py',
                     'mlp-mixer-base-p16_8xb256_in1k.py',
                     'dynamixer-tiny_1xb64_digits.py'):
        assert expected in names


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('data')
    from mmdynamixer.datasets import prepare_digits
    prepare_digits(str(tmp / 'digits'))
    return dict(imagenet=make_imagenet(str(tmp / 'imagenet')),
                cifar10=make_cifar(str(tmp / 'cifar10')),
                cifar100=make_cifar(str(tmp / 'cifar100'), 'cifar100'),
                digits=str(tmp / 'digits'))


@pytest.fixture
def cifar_without_md5(monkeypatch):
    """MMPretrain's CIFAR datasets compare each batch file with the MD5 of
    the real download; stand-ins cannot match, so the checksums (only) are
    switched off for the duration of the test."""
    from mmpretrain.datasets import CIFAR10, CIFAR100
    for cls in (CIFAR10, CIFAR100):
        monkeypatch.setattr(cls, 'train_list',
                            [[n, None] for n, _ in cls.train_list])
        monkeypatch.setattr(cls, 'test_list',
                            [[n, None] for n, _ in cls.test_list])
        monkeypatch.setattr(cls, 'meta', dict(cls.meta, md5=None))


def imagenet_classifier_checkpoint(path):
    """An ImageNet DynaMixer-S checkpoint as tools/train.py would save it."""
    cfg = Config.fromfile(osp.join(REPO, 'configs/dynamixer/'
                                   'dynamixer-s_8xb256_in1k.py'))
    from mmpretrain.registry import MODELS
    state = MODELS.build(cfg.model).state_dict()
    # a value random init cannot produce, to see that it is loaded
    state['backbone.downsample_layers.0.bias'].fill_(0.5)
    torch.save({'state_dict': state, 'meta': {}}, path)


def small_run_cfg(config, data, tmp_path):
    cfg = Config.fromfile(osp.join(REPO, config))
    cfg.work_dir = str(tmp_path / 'work')
    kind = ('cifar100' if 'cifar100' in config else 'cifar10' if 'cifar10'
            in config else 'digits' if 'digits' in config else 'imagenet')
    for name, size in (('train_dataloader', 4), ('val_dataloader', 2)):
        loader = cfg[name]
        loader.batch_size = 2
        loader.num_workers = 0
        loader.persistent_workers = False
        loader.pin_memory = False
        dataset = loader.dataset
        if name == 'train_dataloader':  # (the evaluation sets: unwrapped)
            assert dataset.type == 'ImageIntegrityDataset'
            dataset = dataset.dataset
        dataset.data_root = data[kind]
        dataset.indices = size  # 2 iterations of batch 2
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg.max_epochs = 1
    cfg.train_cfg.val_interval = 1
    # AmpOptimWrapper needs CUDA (mmengine asserts it); on CPU the same
    # optimizer, schedule and model run in float32.
    if cfg.optim_wrapper.get('type') == 'AmpOptimWrapper' and \
            not torch.cuda.is_available():
        cfg.optim_wrapper.type = 'OptimWrapper'
        cfg.optim_wrapper.pop('loss_scale', None)
    cfg.default_hooks.logger.interval = 1
    for hook in cfg.get('custom_hooks', []):
        if hook.type == 'DynaMixerDiagnosticsHook':
            hook.interval = 1
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    if 'cifar' in config:
        ckpt = str(tmp_path / 'in1k.pth')
        imagenet_classifier_checkpoint(ckpt)
        cfg.model.backbone.init_cfg.checkpoint = ckpt
    return cfg


@pytest.mark.parametrize('config', CONFIGS)
def test_config_trains_two_iterations(config, data, tmp_path,
                                      cifar_without_md5):
    cfg = small_run_cfg(config, data, tmp_path)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2
    model = runner.model
    hub = runner.message_hub
    loss = hub.get_scalar('train/loss').current()
    assert loss == loss and loss < 1e4  # finite
    assert 'accuracy/top1' in hub.log_scalars or \
        'val/accuracy/top1' in hub.log_scalars
    if 'cifar' in config:
        # the transfer recipe: backbone at 0.01x the head's learning rate
        groups = runner.optim_wrapper.optimizer.param_groups
        lrs = {g['lr'] for g in groups}
        assert len(lrs) == 2 and max(lrs) / min(lrs) == pytest.approx(100)
        # and the backbone started from the ImageNet checkpoint (2 steps at
        # lr 1e-4 move it only slightly)
        bias = model.backbone.downsample_layers[0].bias
        torch.testing.assert_close(bias, torch.full_like(bias, 0.5),
                                   atol=1e-2, rtol=0)
    if type(model.backbone).__name__ == 'DynaMixer':  # (not the ResNet)
        assert any(k.startswith('train/dynamixer/stage1_entropy_h')
                   for k in hub.log_scalars)
        for m in model.modules():  # the diagnostics hook left nothing behind
            assert not m._forward_hooks


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason='AmpOptimWrapper needs CUDA; the CPU test above '
                    'runs the same configs in float32')
def test_imagenet_config_trains_with_amp_on_gpu(data, tmp_path,
                                                cifar_without_md5):
    cfg = small_run_cfg('configs/dynamixer/dynamixer-s_8xb256_in1k.py', data,
                        tmp_path)
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2
