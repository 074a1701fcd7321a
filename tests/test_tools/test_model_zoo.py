"""The model zoo: metafiles registered with MMPretrain's ModelHub."""
import os.path as osp

import mmpretrain
import pytest
import yaml

import mmdynamixer  # noqa: F401
from mmdx_testing import REPO, run_tool


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


def test_amp_config_on_cpu_names_the_fix(tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip('only CPU machines refuse AMP')
    proc = run_tool('tools/train.py',
                    'configs/dynamixer/dynamixer-s_8xb256_in1k.py',
                    '--work-dir', str(tmp_path), check=False)
    assert proc.returncode != 0
    assert 'optim_wrapper.type=OptimWrapper' in proc.stderr
