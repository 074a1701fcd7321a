"""The params/FLOPs tables of the detection and segmentation READMEs are
what tools/analysis_tools/dense_complexity.py prints: rerunning the named
command reproduces the params and FLOPs cells exactly (for one detector and
one segmenter here; the other two rows come from the same code)."""
import glob
import os.path as osp
import re

import pytest

from mmdx_testing import REPO, run_tool

DET = 'configs/dynamixer_detection/'
SEG = 'configs/dynamixer_segmentation/'


def table_rows(text):
    """``{config: (backbone, params, FLOPs, input)}`` of the tool's table."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if line.startswith('| `') and len(cells) == 7:
            rows[cells[0].strip('`')] = tuple(cells[1:5])
    return rows


def readme_table(folder):
    with open(osp.join(REPO, folder, 'README.md')) as f:
        text = f.read()
    block = text.split('<!-- dense-complexity:begin -->')[1].split(
        '<!-- dense-complexity:end -->')[0]
    command = re.search(r'python (tools/analysis_tools/dense_complexity.py '
                        r'\S+)', text).group(1)
    return table_rows(block), command


@pytest.mark.parametrize('folder,config,data', [
    (DET, DET + 'retinanet_dynamixer-s_fpn_8xb2-1x_coco.py', '_coco'),
    (SEG, SEG + 'fpn_dynamixer-s_4xb4-80k_ade20k-512x512.py',
     '_ade20k-512x512')])
def test_readme_table_is_what_the_command_prints(folder, config, data):
    readme, command = readme_table(folder)
    # the README's command covers every COCO / ADE20K config of the folder
    # (the digit-scene configs have their own table), in its rows
    assert command == \
        f'tools/analysis_tools/dense_complexity.py {folder}*{data}.py'
    assert sorted(r for r in readme if '::' not in r) == sorted(
        osp.relpath(p, REPO)
        for p in glob.glob(osp.join(REPO, f'{folder}*{data}.py')))
    assert config in readme and len(readme) == 4
    out = run_tool('tools/analysis_tools/dense_complexity.py', config,
                   '--repeat', '0').stdout
    printed = table_rows(out)
    assert len(printed) == 2  # ours and the stock ResNet-50 model
    for name, cells in printed.items():
        assert readme[name] == cells, name
    ours, stock = printed[config], [v for k, v in printed.items()
                                    if k != config][0]
    assert ours[0] == 'DynaMixer' and stock[0].startswith('ResNet')


def test_backbone_params_are_the_backbones_own():
    """The backbone column counts what the backbone has: the published S
    (26,265,960 with its classifier head) without the head, plus the two
    output norms of the dense configs."""
    from mmdynamixer.models import DynaMixer
    readme, _ = readme_table(DET)
    backbone = DynaMixer(arch='s', sliding_window=True, out_indices=(0, 1),
                         norm_outputs=True)
    count = sum(p.numel() for p in backbone.parameters())
    head = 384 * 1000 + 1000 + 2 * 384  # fc and the head's LayerNorm
    assert count == 26_265_960 - head + 2 * (192 + 384)
    for name, cells in readme.items():
        if cells[0] == 'DynaMixer':
            assert cells[1].split(' / ')[0] == f'{count / 1e6:.2f}', name
