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
