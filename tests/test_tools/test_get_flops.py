"""tools/analysis_tools/get_flops.py prints the published numbers."""
import re

import pytest

from mmdx_testing import run_tool

# Counted on the authors' reference implementation (models/configs/
# conf_dynamixer.py) with mmengine.analysis at 3x224x224, 1000 classes; the
# paper rounds them to 26M/57M/97M parameters and 7.3G/17.0G/27.4G FLOPs.
PUBLISHED = {
    'configs/dynamixer/dynamixer-s_8xb256_in1k.py': ('26,265,960', '7.324G'),
    'configs/dynamixer/dynamixer-m_8xb128_in1k.py': ('57,128,264', '17.022G'),
    'configs/dynamixer/dynamixer-l_8xb64_in1k.py': ('97,818,088', '27.402G'),
}


@pytest.mark.parametrize('config', sorted(PUBLISHED))
def test_get_flops_prints_published_numbers(config):
    out = run_tool('tools/analysis_tools/get_flops.py', config).stdout
    params, flops = PUBLISHED[config]
    assert re.search(rf'^Params: {params} ', out, re.M), out
    assert re.search(rf'^Flops: {re.escape(flops)} ', out, re.M), out
    assert 'Input shape: (3, 224, 224)' in out
