"""Checkpoints are untrusted input on every torch: the allow-list of
mmdynamixer.utils.safe_pickle is enforced by torch's weights_only loading
where torch has add_safe_globals (>= 2.4), and by the restricted unpickler
otherwise; MMEngine's own loading of local files goes through it.

Both routes are run on a new torch (the restricted unpickler through
torch.load's public ``pickle_module`` argument), and the restricted one on
an old torch, so that each row of the tested stacks checks what it uses."""
import argparse
import collections
import os
import pickle
import types

import numpy as np
import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner import CheckpointLoader, load_checkpoint

import mmdynamixer  # noqa: F401 registers the loader
from mmdynamixer.utils import load_checkpoint_file, safe_pickle


class RunsCode:
    """Unpickling this calls ``exec``: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f'open({self.marker!r}, "w").close()', )


def mmengine_like_checkpoint():
    """What MMEngine's runner saves besides tensors (message hub history,
    numpy scalars and arrays, dtypes), plus a Parameter and a bf16 tensor."""
    history = HistoryBuffer()
    for v in (1.0, 2.0, 4.0):
        history.update(v)
    return {
        'meta': {'epoch': 3, 'seed': np.int64(7),
                 'dataset_meta': {'classes': ('0', '1')},
                 'hist': np.arange(4, dtype=np.float32),
                 'dtype': np.dtype('float16'),
                 'bools': np.array([True, False])},
        'state_dict': collections.OrderedDict(
            w=torch.randn(3, 2), b=torch.nn.Parameter(torch.ones(2)),
            h=torch.arange(4, dtype=torch.bfloat16),
            i=torch.arange(3, dtype=torch.int64)),
        'message_hub': {'log_scalars': {'train/loss': history},
                        'runtime_info': {'iter': np.int32(12),
                                         'lr': np.float64(0.1)}},
    }


def routes():
    """The loaders this torch can run: (name, load(path))."""
    found = [('restricted unpickler', lambda path: torch.load(
        path, map_location='cpu', pickle_module=safe_pickle))]
    if safe_pickle.ALLOW_LIST_API:
        found.append(('weights_only allow-list', lambda path: torch.load(
            path, map_location='cpu', weights_only=True)))
    return found


def test_the_route_taken_is_the_one_this_torch_has():
    assert safe_pickle.ALLOW_LIST_API == hasattr(torch.serialization,
                                                 'add_safe_globals')


@pytest.mark.parametrize('name,load', routes(), ids=[n for n, _ in routes()])
def test_mmengine_checkpoint_loads_equal(tmp_path, name, load):
    path = tmp_path / 'ckpt.pth'
    saved = mmengine_like_checkpoint()
    torch.save(saved, path)
    loaded = load(path)
    for key, value in saved['state_dict'].items():
        assert torch.equal(loaded['state_dict'][key], value), key
        assert type(loaded['state_dict'][key]) is type(value), key
    assert loaded['meta']['seed'] == 7 and type(loaded['meta']['seed']) is \
        np.int64
    assert np.array_equal(loaded['meta']['hist'], saved['meta']['hist'])
    assert loaded['meta']['dtype'] == np.dtype('float16')
    history = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(history, HistoryBuffer)
    assert history.mean() == pytest.approx(7 / 3)
    assert history.current() == 4.0


@pytest.mark.parametrize('name,load', routes(), ids=[n for n, _ in routes()])
def test_a_pickle_that_runs_code_is_refused(tmp_path, name, load):
    marker = tmp_path / 'ran'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.ones(1)},
                'meta': RunsCode(marker)}, path)
    with pytest.raises(pickle.UnpicklingError):
        load(path)
    assert not marker.exists()
    # the same file through the package's reader and MMEngine's own entry
    # points: refused, and nothing ran
    with pytest.raises(RuntimeError, match='not loaded'):
        load_checkpoint_file(str(path))
    with pytest.raises(RuntimeError, match='not loaded'):
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    with pytest.raises(RuntimeError, match='not loaded'):
        load_checkpoint(torch.nn.Linear(1, 1), str(path))
    assert not marker.exists()
    # unpickled without restriction, the payload does run code
    pickle.loads(pickle.dumps(RunsCode(marker)))
    assert marker.exists()


@pytest.mark.parametrize('name,load', routes(), ids=[n for n, _ in routes()])
@pytest.mark.parametrize('obj', [
    argparse.Namespace(lr=0.1),             # old training scripts' args
    types.SimpleNamespace(a=1),
    {'fn': print},                           # a function, not a type
], ids=['Namespace', 'SimpleNamespace', 'function'])
def test_types_outside_the_allow_list_are_refused(tmp_path, name, load, obj):
    path = tmp_path / 'other.pth'
    torch.save({'state_dict': {}, 'extra': obj}, path)
    with pytest.raises(pickle.UnpicklingError):
        load(path)


def test_history_buffer_getattr_allows_only_statistics():
    assert safe_pickle.history_buffer_getattr(HistoryBuffer, 'mean') is \
        HistoryBuffer.mean
    for obj, name in ((HistoryBuffer, '__init__'), (os, 'system'),
                      (HistoryBuffer, '__class__')):
        with pytest.raises(pickle.UnpicklingError, match='refusing getattr'):
            safe_pickle.history_buffer_getattr(obj, name)


def test_restricted_unpickler_allows_exactly_the_allow_list():
    """Each entry of safe_globals resolves through the restricted
    unpickler, to itself; names of the same modules outside it do not."""
    unpickler = safe_pickle.Unpickler(open(os.devnull, 'rb'))
    for name, obj in safe_pickle.allowed_globals().items():
        module, _, attr = name.rpartition('.')
        assert unpickler.find_class(module, attr) is obj, name
    for module, attr in (('numpy', 'load'), ('numpy.lib.npyio', 'load'),
                         ('mmengine.logging.history_buffer', 'MessageHub'),
                         ('torch', 'load'), ('torch.serialization', 'load'),
                         ('builtins', 'eval'), ('os', 'system')):
        with pytest.raises(pickle.UnpicklingError):
            unpickler.find_class(module, attr)


def test_mmengine_reads_local_files_with_the_safe_loader(tmp_path):
    """MMEngine's runner, init_cfg=Pretrained, get_model and the Inferencer
    read files through CheckpointLoader: an MMEngine checkpoint loads
    through it on every torch (MMEngine's own loader would refuse it on
    torch >= 2.6 and unpickle anything before), and a missing file is
    named, with ~ expanded as MMEngine does."""
    path = tmp_path / 'ckpt.pth'
    torch.save(mmengine_like_checkpoint(), path)
    loaded = CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert loaded['message_hub']['log_scalars']['train/loss'].current() == 4
    model = torch.nn.Linear(2, 3)
    torch.save({'state_dict': {'weight': torch.ones(3, 2),
                               'bias': torch.arange(3.)},
                'meta': {'seed': np.int64(1)}}, path)
    load_checkpoint(model, str(path))
    assert torch.equal(model.bias, torch.arange(3.))
    with pytest.raises(FileNotFoundError, match='not found'):
        CheckpointLoader.load_checkpoint('~/no-such-checkpoint.pth')
