import os.path as osp
import sys

import pytest
import torch

# Make the shared helpers importable under --import-mode=importlib.
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
