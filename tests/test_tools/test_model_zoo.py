"""The model zoo: metafiles registered with MMPretrain's ModelHub."""
import os.path as osp

import mmpretrain
import pytest
import yaml

import mmdynamixer  # noqa: F401
from mmdx_testing import REPO, make_imagenet, run_tool


def test_list_models_finds_the_zoo():
    names = mmpretrain.list_models('dynamixer*')
    for expected in ('dynamixer-s_8xb256_in1k', 'dynamixer-m_8xb128_in1k',
                     'dynamixer-l_8xb64_in1k'):
        assert expected in names


@pytest.mark.parametrize('name', ['dynamixer-s_8xb256_in1k',
                                  'dynamixer-m_8xb128_in1k',
                                  'dynamixer-l_8xb64_in1k'])
def test_get_model_matches_metafile(name):
    meta = yaml.safe_load(open(osp.join(REPO, 'configs/dynamixer/'
                                        'metafile.yml')))
    entry = next(m for m in meta['Models'] if m['Name'] == name)
    model = mmpretrain.get_model(name)
    assert type(model.backbone).__name__ == 'DynaMixer'
    assert sum(p.numel() for p in model.parameters()) == \
        entry['Metadata']['Parameters']


def test_metafile_configs_exist_and_flops_agree_with_get_flops():
    meta = yaml.safe_load(open(osp.join(REPO, 'configs/dynamixer/'
                                        'metafile.yml')))
    for entry in meta['Models']:
        assert osp.isfile(osp.join(REPO, entry['Config'])), entry['Config']
    s = next(m for m in meta['Models']
             if m['Name'] == 'dynamixer-s_8xb256_in1k')
    out = run_tool('tools/analysis_tools/get_flops.py', s['Config']).stdout
    assert f"({s['Metadata']['FLOPs']:,})" in out


def test_amp_config_on_cpu_names_the_fix_and_the_fix_works(tmp_path):
    """The published S recipe (AMP) on a machine without a GPU: refused with
    the fix, and the fix, exactly as written, trains (a tiny data set)."""
    import torch
    if torch.cuda.is_available():
        pytest.skip('only machines without a GPU refuse AMP')
    config = 'configs/dynamixer/dynamixer-s_8xb256_in1k.py'
    data = make_imagenet(str(tmp_path / 'imagenet'))
    small = [f'{split}_dataloader.{key}'
             for split, inner in (('train', 'dataset.dataset'),
                                  ('val', 'dataset'))
             for key in (f'{inner}.data_root={data}', 'batch_size=4',
                         'num_workers=0', 'persistent_workers=False')]
    proc = run_tool('tools/train.py', config, '--work-dir',
                    str(tmp_path / 'work'), '--cfg-options', *small,
                    'train_cfg.max_epochs=1', check=False)
    assert proc.returncode != 0
    fix = '--cfg-options optim_wrapper.type=OptimWrapper'
    assert f'On CPU, add `{fix}` (float32).' in proc.stderr
    # the fix exactly as written, added to the same command
    proc = run_tool('tools/train.py', config, '--work-dir',
                    str(tmp_path / 'work'), *fix.split(), *small,
                    'train_cfg.max_epochs=1')
    assert "dropped its AMP setting 'loss_scale'" in proc.stdout
    assert osp.exists(tmp_path / 'work' / 'epoch_1.pth')
