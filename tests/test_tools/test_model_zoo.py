"""The model zoo: metafiles registered with MMPretrain's ModelHub."""
import os.path as osp
import re

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


def test_amp_config_on_cpu_trains_in_bf16_or_float32_saying_why(tmp_path):
    """The published S recipe (AMP) on a machine without a GPU: on a CPU
    with bf16 instructions it trains in bf16 autocast, on one without them
    in float32, each saying so in one line (a tiny data set); the CPU
    without them is this CPU's cpuinfo with the bf16 flags taken out."""
    import torch
    if torch.cuda.is_available():
        pytest.skip('on a GPU, AmpOptimWrapper runs as configured; the CPU '
                    'paths are what this test checks')
    config = 'configs/dynamixer/dynamixer-s_8xb256_in1k.py'
    data = make_imagenet(str(tmp_path / 'imagenet'))
    small = [f'{split}_dataloader.{key}'
             for split, inner in (('train', 'dataset.dataset'),
                                  ('val', 'dataset'))
             for key in (f'{inner}.data_root={data}', 'batch_size=4',
                         'num_workers=0', 'persistent_workers=False')]
    cpuinfo = open('/proc/cpuinfo').read()
    has_bf16 = re.search(r'^flags\s*:.*\b(avx512_bf16|amx_bf16)\b', cpuinfo,
                         re.M) is not None
    without = tmp_path / 'cpuinfo'
    without.write_text(re.sub(r'\b(avx512_bf16|amx_bf16|amx_tile|amx_int8)\b',
                              '', cpuinfo))
    for env, bf16 in ((None, has_bf16),
                      (dict(MMDYNAMIXER_CPUINFO=str(without)), False)):
        work = tmp_path / f'work-{bf16}'
        proc = run_tool('tools/train.py', config, '--work-dir', str(work),
                        '--cfg-options', *small, 'train_cfg.max_epochs=1',
                        env=env)
        line = ('No GPU: optim_wrapper AmpOptimWrapper -> '
                'CPUBf16OptimWrapper: mixed precision in bf16 autocast on the '
                'CPU (the CPU has avx512_bf16' if bf16 else
                'No GPU: optim_wrapper AmpOptimWrapper -> OptimWrapper: '
                'float32, as the CPU has none of avx512_bf16, amx_bf16')
        assert line in proc.stdout, proc.stdout[-3000:]
        assert osp.exists(work / 'epoch_1.pth')
    # --amp on a CPU without bf16 instructions is refused, naming why
    proc = run_tool('tools/train.py', config, '--amp', '--work-dir',
                    str(tmp_path / 'refused'), '--cfg-options', *small,
                    env=dict(MMDYNAMIXER_CPUINFO=str(without)), check=False)
    assert proc.returncode != 0
    assert ('--amp on a CPU trains in bf16, but the CPU has none of '
            'avx512_bf16, amx_bf16') in proc.stderr
    # the float32 fix of before still works as written
    proc = run_tool('tools/train.py', config, '--work-dir',
                    str(tmp_path / 'fp32'), '--cfg-options',
                    'optim_wrapper.type=OptimWrapper', *small,
                    'train_cfg.max_epochs=1')
    assert "dropped its AMP setting 'loss_scale'" in proc.stdout
