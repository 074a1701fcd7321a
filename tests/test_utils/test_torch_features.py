"""What each torch offers, decided in mmdynamixer.utils.torch_features: the
decisions match the installed torch's API, and a feature that the torch
lacks is switched off with one log line naming the torch it needs, while
the model still trains (on the old torch for real; on a new one by setting
the flag the package reads)."""
import inspect
import os
import subprocess
import sys

import pytest
import torch

from mmdynamixer.utils import torch_features
from mmdx_testing import REPO


def test_flags_follow_this_torch_api():
    assert torch_features.SELECTIVE_CHECKPOINT == hasattr(
        torch.utils.checkpoint, 'create_selective_checkpoint_contexts')
    assert torch_features.LOAD_STATE_DICT_PRE_HOOK == hasattr(
        torch.nn.Module, 'register_load_state_dict_pre_hook')
    has_dynamo = 'dynamo' in inspect.signature(torch.onnx.export).parameters
    assert torch_features.onnx_export_kwargs() == (
        dict(dynamo=False) if has_dynamo else {})


def test_autocast_state_on_this_torch():
    assert torch_features.autocast_state('cpu')[0] is False
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert torch_features.autocast_state('cpu') == (True, torch.bfloat16)
        assert torch_features.autocast_enabled('cpu') is True
        # another device type's autocast is not the CPU's
        assert torch_features.autocast_state('cuda')[0] is False
    assert torch_features.autocast_state('cpu')[0] is False


def run(code):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.join(REPO, 'tests'), REPO]))
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


SWITCHED_OFF = '''
import torch
from mmdynamixer.utils import torch_features
if {force}:
    torch_features.{flag} = False
import mmdynamixer
from mmpretrain.registry import MODELS
from mmdynamixer.testing import retained_bytes, saved_for_backward
from mmdx_testing import TINY
print('available', torch_features.{flag})
models = [MODELS.build(dict(TINY, selective_cp=cp)) for cp in (True, False)]
x = torch.randn(2, 3, 32, 32)
for model in models:  # both train
    model(x)[-1].sum().backward()
print('kept', [retained_bytes(lambda: m(x))[0] for m in models])
print('saved', [saved_for_backward(lambda: m(x)) for m in models])
'''


def test_selective_cp_is_off_without_the_api():
    """Without torch.utils.checkpoint.create_selective_checkpoint_contexts
    (torch < 2.4), selective_cp is off, said once, and a layer keeps what
    selective_cp=False keeps."""
    out = run(SWITCHED_OFF.format(
        force=torch_features.SELECTIVE_CHECKPOINT,
        flag='SELECTIVE_CHECKPOINT'))
    assert 'available False' in out
    line = ('selective_cp needs torch >= 2.4 (torch.utils.checkpoint.'
            'create_selective_checkpoint_contexts); torch '
            f'{torch.__version__} is installed, so DynaMixer layers keep all '
            'their activations for backward, as with selective_cp=False.')
    assert out.count(line) == 1, out[-3000:]
    # what autograd saves, tensor by tensor: exact on every torch (the
    # profiler's allocation count varies by tens of KB on torch 2.1); a
    # checkpointed layer would save far less
    saved = eval(out.split('saved ')[-1].splitlines()[0])
    assert saved[0] == saved[1] and saved[0][0] > 0


@pytest.mark.skipif(not torch_features.SELECTIVE_CHECKPOINT, reason=(
    'torch < 2.4 has no create_selective_checkpoint_contexts: selective_cp '
    'is off, as test_selective_cp_is_off_without_the_api checks'))
def test_selective_cp_on_where_torch_has_it():
    out = run(SWITCHED_OFF.format(force=False, flag='SELECTIVE_CHECKPOINT'))
    assert 'selective_cp needs' not in out
    kept = eval(out.split('kept ')[-1].splitlines()[0])
    assert kept[0] < 0.75 * kept[1]  # the selective layers keep less


GUARD = '''
import torch
from mmdynamixer.utils import torch_features
if {force}:
    torch_features.LOAD_STATE_DICT_PRE_HOOK = False
import mmdynamixer
from mmpretrain.registry import MODELS
from mmdynamixer.utils import CheckpointMismatchError, load_state_dict_checked
from mmdx_testing import TINY
models = [MODELS.build(TINY) for _ in range(2)]
state = models[0].state_dict()
state.pop('stages.0.0.mixer.proj.bias')
from mmengine.runner.checkpoint import load_state_dict  # MMEngine's loader
try:
    load_state_dict(models[1], state)  # not strict: it only warns
    print('load_state_dict: loaded')
except CheckpointMismatchError:
    print('load_state_dict: refused')
try:
    load_state_dict_checked(models[1], state, 'ckpt.pth')
    print('checked: loaded')
except CheckpointMismatchError as err:
    print('checked: refused', 'stages.0.0.mixer.proj.bias' in str(err))
'''


def test_load_guard_without_a_public_pre_hook():
    """Without Module.register_load_state_dict_pre_hook (torch < 2.5), a
    plain load_state_dict is not checked, and one log line says so and
    which loads still are; mmdynamixer's own checked loads refuse."""
    out = run(GUARD.format(force=torch_features.LOAD_STATE_DICT_PRE_HOOK))
    line = ('Checking every load_state_dict into a DynaMixer needs torch >= '
            f'2.5 (Module.register_load_state_dict_pre_hook); torch '
            f'{torch.__version__} is installed, so only mmdynamixer\'s own '
            'loads are checked')
    assert out.count(line) == 1, out[-3000:]
    assert 'load_state_dict: loaded' in out
    assert 'checked: refused True' in out


@pytest.mark.skipif(not torch_features.LOAD_STATE_DICT_PRE_HOOK, reason=(
    'torch < 2.5 has no public load_state_dict pre-hook: the guard is off, '
    'as test_load_guard_without_a_public_pre_hook checks'))
def test_load_guard_with_a_public_pre_hook():
    out = run(GUARD.format(force=False))
    assert 'Checking every load_state_dict' not in out
    assert 'load_state_dict: refused' in out
    assert 'checked: refused True' in out

