"""Every path that puts weights into a model with a DynaMixer backbone loads
every key exactly, or stops with the error that lists the missing,
unexpected and mis-shaped keys; intended partial loads skip exactly the
expected keys and name them; MMDYNAMIXER_PARTIAL_LOAD=1 is the process-wide
opt-out (the scoped one, mmdynamixer.allow_partial_load(), and the backbone's
and head's own load_state_dict(strict=False): tests/test_utils/
test_partial_load.py)."""
import copy
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmdynamixer  # noqa: F401
from mmdynamixer.utils import CheckpointMismatchError, torch_features
from mmdx_testing import (REPO, TINY, TINY_ARCH, make_imagenet, run_tool,
                          snapshot, stock_tool, write_tiny_imagenet_config)

# Loads that only the guard on every load_state_dict checks (MMEngine's
# own loaders, get_model, the Inferencer, deep copies).
needs_guard = pytest.mark.skipif(
    not torch_features.LOAD_STATE_DICT_PRE_HOOK, reason=(
        'torch < 2.5 has no public load_state_dict pre-hook, so the guard '
        'is off (one log line says so: tests/test_utils/'
        'test_torch_features.py checks it); the checked loads are tested '
        'here on every torch'))

DROPPED = 'backbone.stages.0.0.mixer.mix_h.compress.weight'
UNKNOWN = 'backbone.stages.0.0.mixer.extra.weight'


def classifier(arch=TINY_ARCH, num_classes=4):
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(TINY, arch=arch),
        head=dict(type='DynaMixerClsHead', num_classes=num_classes,
                  in_channels=arch['embed_dims'][-1])))


@pytest.fixture(scope='module')
def ckpts(tmp_path_factory):
    """A good checkpoint of the tiny classifier, one lacking a weight and
    holding an unknown key, and one of another model (other widths)."""
    tmp = tmp_path_factory.mktemp('ckpts')
    torch.manual_seed(1)
    state = classifier().state_dict()
    for value in state.values():
        value.normal_()  # far from any init: a load is visible
    paths = dict(good=str(tmp / 'good.pth'), bad=str(tmp / 'bad.pth'),
                 other=str(tmp / 'other.pth'))
    torch.save({'state_dict': state, 'meta': {}}, paths['good'])
    bad = dict(state)
    bad.pop(DROPPED)
    bad[UNKNOWN] = torch.zeros(3)
    torch.save({'state_dict': bad, 'meta': {}}, paths['bad'])
    other = classifier(dict(TINY_ARCH, embed_dims=[24, 48])).state_dict()
    torch.save({'state_dict': other, 'meta': {}}, paths['other'])
    paths['state'] = state
    paths['data'] = make_imagenet(str(tmp / 'imagenet'))
    paths['config'] = write_tiny_imagenet_config(tmp / 'tiny.py',
                                                 paths['data'], max_epochs=2)
    return paths


def assert_lists_keys(message, missing=(), unexpected=(), mismatched=()):
    for key in missing:
        assert 'missing keys' in message and key in message, message
    for key in unexpected:
        assert 'unexpected keys' in message and key in message, message
    for key in mismatched:
        assert 'shape mismatches' in message and key in message, message


@pytest.mark.parametrize('form', ['dict', 'list'])
def test_init_cfg_refuses_another_model(ckpts, form):
    pretrained = dict(type='Pretrained', checkpoint=ckpts['other'],
                      prefix='backbone.')
    init_cfg = pretrained if form == 'dict' else [
        dict(type='TruncNormal', layer='Linear', std=.02), pretrained]
    from mmpretrain.registry import MODELS
    backbone = MODELS.build(dict(TINY, init_cfg=init_cfg))
    with pytest.raises(CheckpointMismatchError) as err:
        backbone.init_weights()
    assert_lists_keys(str(err.value), mismatched=[
        'downsample_layers.0.weight: checkpoint (24, 3, 4, 4) vs model '
        '(16, 3, 4, 4)'])
    assert ckpts['other'] in str(err.value)


@pytest.mark.parametrize('form', ['dict', 'list'])
@pytest.mark.parametrize('config', [
    'configs/dynamixer_detection/retinanet_dynamixer-s_fpn_8xb2-1x_coco.py',
    'configs/dynamixer_segmentation/'
    'fpn_dynamixer-s_4xb4-80k_ade20k-512x512.py'])
def test_dense_configs_refuse_another_model(ckpts, config, form):
    """The backbone's init_cfg nested in MMDetection and MMSegmentation
    configs, as a dict or a list: the detector's or segmenter's
    init_weights stops at the checkpoint of another model."""
    from mmengine.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO, config))
    init_default_scope(cfg.default_scope)
    pretrained = dict(type='Pretrained', checkpoint=ckpts['other'],
                      prefix='backbone.')
    cfg.model.backbone.init_cfg = pretrained if form == 'dict' else \
        [pretrained]
    model = MODELS.build(cfg.model)
    with pytest.raises(CheckpointMismatchError) as err:
        model.init_weights()
    assert 'shape mismatches' in str(err.value)
    init_default_scope('mmpretrain')


def test_list_init_cfg_loads_a_fitting_checkpoint(ckpts):
    from mmpretrain.registry import MODELS
    backbone = MODELS.build(dict(TINY, init_cfg=[
        dict(type='TruncNormal', layer='Linear', std=.02),
        dict(type='Pretrained', checkpoint=ckpts['good'],
             prefix='backbone.')]))
    backbone.init_weights()
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, ckpts['state']['backbone.' + key]), key


@needs_guard
def test_mmengine_pretrained_init_goes_through_the_guard(ckpts):
    """MMEngine's own non-strict PretrainedInit (what a list init_cfg on
    a parent module runs) meets the backbone's guard."""
    from mmengine.model.weight_init import PretrainedInit
    from mmpretrain.registry import MODELS
    backbone = MODELS.build(TINY)
    with pytest.raises(CheckpointMismatchError) as err:
        PretrainedInit(checkpoint=ckpts['bad'], prefix='backbone.')(backbone)
    assert_lists_keys(str(err.value), missing=[DROPPED[len('backbone.'):]],
                      unexpected=[UNKNOWN[len('backbone.'):]])


def test_prefix_hint_and_its_fix(ckpts):
    from mmpretrain.registry import MODELS
    backbone = MODELS.build(dict(TINY, init_cfg=dict(
        type='Pretrained', checkpoint=ckpts['good'])))
    with pytest.raises(CheckpointMismatchError) as err:
        backbone.init_weights()
    assert "add prefix='backbone.' to the init_cfg" in str(err.value)
    backbone = MODELS.build(dict(TINY, init_cfg=dict(
        type='Pretrained', checkpoint=ckpts['good'], prefix='backbone.')))
    backbone.init_weights()  # the fix, as the message says


@needs_guard
def test_get_model_and_inferencer_refuse_another_model(ckpts):
    from mmpretrain import ImageClassificationInferencer, get_model
    with pytest.raises(CheckpointMismatchError) as err:
        get_model('dynamixer-s_8xb256_in1k', pretrained=ckpts['other'])
    assert 'shape mismatches' in str(err.value)
    with pytest.raises(CheckpointMismatchError):
        ImageClassificationInferencer('dynamixer-s_8xb256_in1k',
                                      pretrained=ckpts['bad'])


@needs_guard
def test_every_copy_of_the_model_keeps_the_guard(ckpts):
    """Deep copies (EMA) and torch's own load_state_dict: still strict."""
    model = copy.deepcopy(classifier())
    bad = torch.load(ckpts['bad'], weights_only=True)['state_dict']
    with pytest.raises(CheckpointMismatchError):
        model.load_state_dict(bad, strict=False)
    model.load_state_dict(ckpts['state'])  # a fitting one loads


def test_mmseg_pretrained_field_names_the_fix(ckpts):
    """A stock MMSegmentation config's `model.pretrained` (a ResNet
    checkpoint) reaching the swapped-in backbone; and the fix it names."""
    from mmengine.registry import MODELS
    cfg = Config.fromfile(osp.join(
        REPO, 'configs/dynamixer_segmentation/'
        'fpn_dynamixer-s_4xb4-80k_ade20k-512x512.py'))
    init_default_scope('mmseg')
    cfg.model.pretrained = 'open-mmlab://resnet50_v1c'
    with pytest.raises(ValueError) as err:
        MODELS.build(cfg.model)
    assert ("Set model.pretrained=None and give the checkpoint as backbone "
            "init_cfg=dict(type='Pretrained', checkpoint=..., "
            "prefix='backbone.')") in str(err.value)
    cfg.model.pretrained = None  # the fix
    cfg.model.backbone = dict(TINY, type='mmpretrain.DynaMixer',
                              sliding_window=True, out_indices=(0, 1),
                              init_cfg=dict(type='Pretrained',
                                            checkpoint=ckpts['good'],
                                            prefix='backbone.'))
    cfg.model.neck.in_channels = [16, 32]
    MODELS.build(cfg.model).init_weights()
    init_default_scope('mmpretrain')


TOOLS = {'ours': ('tools/train.py', 'tools/test.py'),
         'mmpretrain': (stock_tool('mmpretrain', 'train.py'),
                        stock_tool('mmpretrain', 'test.py'))}


@pytest.mark.parametrize('tool', TOOLS)
def test_tools_refuse_a_mismatched_checkpoint(ckpts, tmp_path, tool):
    """The issue's case: a checkpoint lacking one weight and holding one
    unknown key: tools/test.py, load_from and --resume stop before
    evaluating or training anything, and nothing in the work dir is lost;
    with our tools and with MMPretrain's own (the config's StrictLoadHook
    does it)."""
    train, test = TOOLS[tool]
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'notes.txt').write_text('a file of the user')
    before = snapshot(str(work))
    runs = {
        'test': [test, ckpts['config'], ckpts['bad']],
        'load_from': [train, ckpts['config'], '--cfg-options',
                      f'load_from={ckpts["bad"]}'],
        'resume': [train, ckpts['config'], '--resume', ckpts['bad']],
    }
    for name, args in runs.items():
        proc = run_tool(*args, '--work-dir', str(work), check=False)
        assert proc.returncode != 0, name
        message = proc.stderr
        assert 'CheckpointMismatchError' in message, (name, message[-3000:])
        assert ckpts['bad'] in message
        assert_lists_keys(message, missing=[DROPPED], unexpected=[UNKNOWN])
        assert 'accuracy/top1' not in proc.stdout + message, name
        assert 'Epoch(train)' not in proc.stdout + message, name
        now = snapshot(str(work))
        assert {p: now[p] for p in before} == before, name
        assert not [p for p in now if p.endswith('.pth')], name


def test_auto_resume_names_the_checkpoint_it_found(ckpts, tmp_path):
    """``--resume`` with no value finds the work dir's last checkpoint; a
    mismatched one is refused, and the error names that file (not
    another: the work dir holds an older one too)."""
    import shutil
    work = tmp_path / 'work'
    work.mkdir()
    older, found = work / 'epoch_1.pth', work / 'epoch_2.pth'
    shutil.copy(ckpts['good'], older)
    shutil.copy(ckpts['bad'], found)
    (work / 'last_checkpoint').write_text(str(found))
    proc = run_tool('tools/train.py', ckpts['config'], '--resume',
                    '--work-dir', str(work), check=False)
    assert proc.returncode != 0
    assert 'CheckpointMismatchError' in proc.stderr, proc.stderr[-3000:]
    assert f'{found} does not fit' in proc.stderr
    assert str(older) not in proc.stderr
    assert_lists_keys(proc.stderr, missing=[DROPPED], unexpected=[UNKNOWN])


@needs_guard
def test_a_config_without_the_hooks_still_refuses_through_the_guard(
        ckpts, tmp_path):
    """A user's own config without mmdynamixer's hooks, run with
    MMPretrain's own tools: a load_from whose backbone weights do not fit
    is still refused, by the backbone's own guard."""
    config = tmp_path / 'bare.py'
    config.write_text(f"_base_ = {ckpts['config']!r}\n"
                      'custom_hooks = [dict(type="EpochSeedHook")]\n'
                      f"load_from = {ckpts['bad']!r}\n")
    proc = run_tool(TOOLS['mmpretrain'][0], str(config), '--work-dir',
                    str(tmp_path / 'work'), check=False)
    assert proc.returncode != 0
    assert 'CheckpointMismatchError' in proc.stderr, proc.stderr[-3000:]
    assert_lists_keys(proc.stderr, missing=[DROPPED[len('backbone.'):]])
    assert 'Epoch(train)' not in proc.stdout + proc.stderr


def test_partial_load_opt_out_logs_what_stays_random(ckpts, tmp_path):
    proc = run_tool('tools/test.py', ckpts['config'], ckpts['bad'],
                    '--work-dir', str(tmp_path),
                    env=dict(MMDYNAMIXER_PARTIAL_LOAD='1'))
    log = proc.stdout + proc.stderr
    assert 'MMDYNAMIXER_PARTIAL_LOAD=1: loading the rest' in log
    assert DROPPED in log and 'keep their random init' in log
    assert 'accuracy/top1' in log  # the run went on


def test_load_from_hint_is_a_working_fix(ckpts, tmp_path):
    """A classifier checkpoint as load_from of a model with another head:
    refused, with the hint to initialise only the backbone; the hint, as
    written into the config, trains, and the head keys it leaves out are
    named in the log."""
    child = tmp_path / "five_classes.py"
    child.write_text(f"_base_ = {ckpts['config']!r}\n"
                     "model = dict(head=dict(num_classes=5))\n")
    proc = run_tool('tools/train.py', str(child), '--work-dir',
                    str(tmp_path / 'a'), '--cfg-options',
                    f'load_from={ckpts["good"]}', check=False)
    assert proc.returncode != 0
    hint = ("set model.backbone.init_cfg=dict(type='Pretrained', "
            "checkpoint=CKPT, prefix='backbone.') instead of load_from")
    assert hint in proc.stderr, proc.stderr[-3000:]
    assert_lists_keys(proc.stderr, mismatched=['head.fc.weight'])
    fixed = tmp_path / 'fixed.py'
    fixed.write_text(
        f"_base_ = {str(child)!r}\nCKPT = {ckpts['good']!r}\n"
        "model = dict(backbone=dict(init_cfg=dict(type='Pretrained', "
        "checkpoint=CKPT, prefix='backbone.')))\n")
    proc = run_tool('tools/train.py', str(fixed), '--work-dir',
                    str(tmp_path / 'b'))
    log = proc.stdout + proc.stderr
    assert (f"{ckpts['good']}: loading the {len(ckpts['state']) - 4} "
            "entries under 'backbone.'; left out 4 others: head.fc.bias, "
            "head.fc.weight, head.norm.bias, head.norm.weight") in log, \
        log[-3000:]
