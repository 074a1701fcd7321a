"""DynaMixerDiagnosticsHook: per-stage mixing entropies and branch weights
in the log, scalars.json and TensorBoard; nothing attached otherwise."""
import glob
import json
import math
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmdx_testing import make_imagenet, run_tool, write_tiny_imagenet_config

TENSORBOARD = '''
visualizer = dict(type='UniversalVisualizer', vis_backends=[
    dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
'''
# TINY_ARCH at 32 px: 8x8 tokens in stage 0, 4x4 in stage 1
TOKENS = {0: 8, 1: 4}


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_imagenet(str(tmp_path_factory.mktemp('imagenet')),
                         num_classes=4, train_per_class=4, val_per_class=1)


def test_scalars_in_log_json_and_tensorboard(data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import \
        EventAccumulator
    config = write_tiny_imagenet_config(tmp_path / 'cfg.py', data,
                                        random_aug=True, extra=TENSORBOARD)
    work = tmp_path / 'work'
    run_tool('tools/train.py', config, '--work-dir', str(work))
    run_dir = glob.glob(str(work / '*' / 'vis_data'))[0]
    lines = [json.loads(l) for l in open(osp.join(run_dir, 'scalars.json'))]
    train = [l for l in lines if 'loss' in l]
    assert len(train) == 8  # interval 1, 2 epochs x 4 iterations
    for entry in train:
        for stage, n in TOKENS.items():
            for op in 'hw':
                value = entry[f'dynamixer/stage{stage}_entropy_{op}']
                assert 0 < value <= math.log(n) + 1e-6
            weights = [entry[f'dynamixer/stage{stage}_weight_{b}']
                       for b in 'hwc']
            assert all(0 < w < 1 for w in weights)
            assert sum(weights) == pytest.approx(1, abs=1e-5)

    events = EventAccumulator(glob.glob(osp.join(run_dir, 'events.out.*'))[0])
    events.Reload()
    tag = 'dynamixer/stage1_entropy_w'
    assert tag in events.Tags()['scalars']
    tb = {e.step: e.value for e in events.Scalars(tag)}
    assert {l['step']: l[tag] for l in train} == pytest.approx(tb, abs=1e-5)

    log = open(glob.glob(str(work / '*' / '*.log'))[0]).read()
    assert 'dynamixer/stage0_entropy_h:' in log
    assert 'dynamixer/stage1_weight_c:' in log


def test_sliding_window_model(data, tmp_path):
    """In sliding mode (48 px images for a 32 px model) the hook logs the
    entropies of the windows' mixing weights."""
    config = write_tiny_imagenet_config(tmp_path / 'cfg.py', data)
    cfg = Config.fromfile(config)
    cfg.model.backbone.sliding_window = True
    for pipeline in (cfg.train_dataloader.dataset.dataset.pipeline,
                     cfg.val_dataloader.dataset.pipeline):
        pipeline[1] = dict(type='Resize', scale=(48, 48))
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    runner.train()
    hub = runner.message_hub
    for stage, n in TOKENS.items():
        value = hub.get_scalar(f'train/dynamixer/stage{stage}_entropy_w')
        assert 0 < value.current() <= math.log(n) + 1e-6


class HookCounter(Hook):
    """Counts the forward hooks on the model when each iteration starts
    (after every other hook's before_train_iter) and ends."""
    priority = 'LOWEST'

    def __init__(self):
        self.during, self.after = [], []

    @staticmethod
    def count(runner):
        return sum(len(m._forward_hooks) for m in runner.model.modules())

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.during.append(self.count(runner))

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.after.append(self.count(runner))


def diagnostics_hook(cfg):
    hook, = [h for h in cfg.custom_hooks
             if h.type == 'DynaMixerDiagnosticsHook']
    return hook


def test_attached_only_on_logging_iterations(data, tmp_path):
    config = write_tiny_imagenet_config(tmp_path / 'cfg.py', data)
    cfg = Config.fromfile(config)
    diagnostics_hook(cfg).interval = 3
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    counter = HookCounter()
    runner.register_hook(counter)
    runner.train()
    logging = [i for i in range(8) if (i + 1) % 3 == 0]
    assert [i for i, n in enumerate(counter.during) if n] == logging
    assert all(n == 0 for n in counter.after)


def test_refuses_a_model_without_dynamixer(data, tmp_path):
    config = write_tiny_imagenet_config(tmp_path / 'cfg.py', data)
    cfg = Config.fromfile(config)
    cfg.model = dict(type='ImageClassifier',
                     backbone=dict(type='ResNet', depth=18),
                     neck=dict(type='GlobalAveragePooling'),
                     head=dict(type='LinearClsHead', num_classes=4,
                               in_channels=512))
    cfg.work_dir = str(tmp_path / 'work')
    with pytest.raises(ValueError, match='needs a model with a DynaMixer'):
        Runner.from_cfg(cfg).train()


def test_probe_pictures_reach_tensorboard_and_vis_image(data, tmp_path):
    """With probe_images, the hook's mixing pictures appear in the
    TensorBoard event file (as images, at the drawing iterations) and in
    LocalVisBackend's vis_image folder."""
    from tensorboard.backend.event_processing.event_accumulator import \
        EventAccumulator
    probe = sorted(glob.glob(osp.join(data, 'val', '*.JPEG')))[0]
    config = write_tiny_imagenet_config(tmp_path / 'cfg.py', data,
                                        extra=TENSORBOARD)
    cfg = Config.fromfile(config)
    diagnostics_hook(cfg).update(probe_images=[probe], image_interval=3)
    cfg.work_dir = str(tmp_path / 'work')
    Runner.from_cfg(cfg).train()
    run_dir = glob.glob(str(tmp_path / 'work' / '*' / 'vis_data'))[0]
    events = EventAccumulator(glob.glob(osp.join(run_dir, 'events.out.*'))[0],
                              size_guidance={'images': 0})
    events.Reload()
    tag = 'dynamixer_mixing_' + osp.splitext(osp.basename(probe))[0]
    assert tag in events.Tags()['images']
    # every 3rd of 8 iterations, and after the last
    assert [e.step for e in events.Images(tag)] == [3, 6, 8]
    assert events.Images(tag)[0].height > 300
    pngs = glob.glob(osp.join(run_dir, 'vis_image', '**', '*.png'),
                     recursive=True)
    assert len(pngs) == 3


def test_plot_diagnostics_draws_the_logged_series(data, tmp_path):
    """tools/analysis_tools/plot_diagnostics.py reads a run's scalars.json:
    the series it plots are exactly the logged values."""
    import importlib.util
    config = write_tiny_imagenet_config(tmp_path / 'cfg.py', data)
    work = tmp_path / 'work'
    run_tool('tools/train.py', config, '--work-dir', str(work))
    scalars = glob.glob(str(work / '*' / 'vis_data' / 'scalars.json'))[0]
    out = tmp_path / 'diag.png'
    proc = run_tool('tools/analysis_tools/plot_diagnostics.py', scalars,
                    '--tokens', '8', '4', '--out-file', str(out))
    assert f'Wrote {out}' in proc.stdout and out.stat().st_size > 10000
    spec = importlib.util.spec_from_file_location(
        'plot_diagnostics', 'tools/analysis_tools/plot_diagnostics.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    series = tool.load_series(scalars)
    lines = [json.loads(l) for l in open(scalars) if '"loss"' in l]
    key = 'dynamixer/stage0_entropy_h'
    assert series[key] == ([l['step'] for l in lines],
                           [l[key] for l in lines])
    assert len(series) == 2 * 5 + 1  # 2 entropies, 3 weights per stage
    proc = run_tool('tools/analysis_tools/plot_diagnostics.py',
                    str(tmp_path / 'missing.json'), check=False)
    assert 'not found: give the scalars.json of a run' in proc.stderr


@pytest.mark.parametrize('recompute', [
    dict(selective_cp=True), dict(selective_cp=False, with_cp=True)])
def test_values_unchanged_when_layers_are_recomputed(data, tmp_path,
                                                     recompute):
    """Recomputing layers in the backward pass runs the op hooks again on
    the same inputs: the logged means equal those of a run that keeps
    every activation (same seed, same data)."""
    logged = []
    for i, modes in enumerate([dict(selective_cp=False, with_cp=False),
                               recompute]):
        config = write_tiny_imagenet_config(tmp_path / f'cfg{i}.py', data)
        cfg = Config.fromfile(config)
        cfg.model.backbone.update(modes)
        cfg.train_cfg.max_epochs = 1
        cfg.work_dir = str(tmp_path / f'work{i}')
        runner = Runner.from_cfg(cfg)
        runner.train()
        logged.append({key: history.data[0].tolist()
                       for key, history in runner.message_hub.log_scalars.items()
                       if key.startswith('train/dynamixer/')})
    reference, recomputed = logged
    assert len(reference) == 2 * (2 + 3)  # 2 stages: entropy h, w; 3 weights
    assert recomputed.keys() == reference.keys()
    for key, values in reference.items():
        assert len(values) == 4  # every iteration of the epoch logs
        assert recomputed[key] == pytest.approx(values, rel=1e-5), key
