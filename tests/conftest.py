import os.path as osp
import random
import sys

import numpy as np
import pytest
import torch

# Make the shared helpers importable under --import-mode=importlib.
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))


@pytest.fixture(autouse=True)
def _seed():
    # every generator a test may draw from (MMPretrain's batch augments draw
    # from numpy's), so that no result depends on the tests run before it
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def pytest_report_header(config):
    """The facts float32 results depend on, at the top of every run."""
    return (f'torch {torch.__version__}, CPU capability '
            f'{torch.backends.cpu.get_cpu_capability()} (ATEN_CPU_CAPABILITY '
            f'selects it), {torch.get_num_threads()} threads')


@pytest.fixture(scope='session')
def digits_trained(tmp_path_factory):
    """The Quick start's run, once per session: the digits prepared by
    the documented command, the Quick start's config trained with
    MMPretrain's own tools/train.py. ``(data root, work dir)``."""
    from mmdx_testing import (DIGITS_CONFIG, digits_data_options, run_tool,
                              stock_tool)
    tmp = tmp_path_factory.mktemp('digits')
    root, work = tmp / 'digits', tmp / 'work'
    out = run_tool('tools/dataset_converters/prepare_digits.py', str(root))
    assert 'Wrote 1797 digit images' in out.stdout
    run_tool(stock_tool('mmpretrain', 'train.py'), DIGITS_CONFIG,
             '--work-dir', str(work), '--cfg-options',
             *digits_data_options(root))
    return root, work
