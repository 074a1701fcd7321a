"""Reference-implementation checkpoints: conversion, parity, errors."""
import os.path as osp

import pytest
import torch

import mmdynamixer  # noqa: F401
from mmdynamixer.apis import convert_official, unwrap_official
from mmdynamixer.apis.official_checkpoint import build_classifier

from mmdx_testing import DATA, run_tool

FIXTURE = osp.join(DATA, 'dynamixer_tiny_official.pth')
KEYS_TSV = osp.join(DATA, 'official_state_dict_keys.tsv')
CONVERTER = 'tools/model_converters/dynamixer_to_mmpretrain.py'


@pytest.fixture(scope='module')
def fixture():
    return torch.load(FIXTURE, weights_only=True)


def test_parity_with_reference_output_float64(tmp_path, fixture):
    src = tmp_path / 'official.pth'
    torch.save(fixture['state_dict'], src)
    dst = tmp_path / 'ours.pth'
    run_tool(CONVERTER, str(src), str(dst))
    converted = torch.load(dst, weights_only=True)
    settings = converted['meta']['settings']
    ref = fixture['arch']
    assert settings['arch'] == dict(embed_dims=ref['embed_dims'],
                                    depths=ref['layers'],
                                    num_segments=ref['num_heads'],
                                    reduced_dims=ref['reduced_dims'])
    assert settings['img_size'] == 56 and settings['num_classes'] == 10
    model = build_classifier(settings).double().eval()
    model.load_state_dict(converted['state_dict'], strict=True)
    with torch.no_grad():
        out = model(fixture['input'].double())
    assert (out - fixture['output']).abs().max().item() < 1e-10


@pytest.mark.parametrize('wrap', ['state_dict', 'state_dict_ema', 'module'])
def test_wrapped_checkpoints(tmp_path, fixture, wrap):
    sd = fixture['state_dict']
    if wrap == 'module':
        ckpt, ema = {'state_dict': {'module.' + k: v for k, v in sd.items()}}, False
    else:
        ckpt, ema = {wrap: sd, 'epoch': 3}, wrap.endswith('ema')
    converted, _ = convert_official(unwrap_official(ckpt, ema=ema))
    plain, _ = convert_official(unwrap_official(sd))
    assert list(converted) == list(plain)


def test_published_layouts_convert_and_fit(tmp_path):
    """Every key of the reference S/M/L maps onto our S/M/L exactly."""
    from mmdynamixer.models import DynaMixer
    rows = [l.rstrip('\n').split('\t') for l in open(KEYS_TSV)
            if not l.startswith('#')]
    for name in ('s', 'm', 'l'):
        state = {k: torch.empty(eval(shape)) for model, k, shape in rows
                 if model == f'dynamixer-{name}'}
        ours, settings = convert_official(state)
        assert settings['arch'] == DynaMixer.parse_arch(name)
        assert settings['img_size'] == 224 and settings['num_classes'] == 1000
        model = build_classifier(settings)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        assert {k: tuple(v.shape) for k, v in ours.items()} == expected


def test_missing_keys_are_listed(tmp_path, fixture):
    sd = dict(fixture['state_dict'])
    del sd['network.2.1.attn.mix_w.generate.weight'], sd['norm.bias']
    src = tmp_path / 'broken.pth'
    torch.save(sd, src)
    proc = run_tool(CONVERTER, str(src), str(tmp_path / 'x.pth'), check=False)
    assert proc.returncode != 0
    assert 'missing keys (2)' in proc.stderr
    assert 'backbone.stages.1.1.mixer.mix_w.generate.weight' in proc.stderr
    assert 'head.norm.bias' in proc.stderr
    assert not (tmp_path / 'x.pth').exists()


def test_unexpected_keys_are_listed(tmp_path, fixture):
    sd = dict(fixture['state_dict'])
    sd['network.0.0.attn.qkv.weight'] = torch.zeros(3)
    sd['pos_embed'] = torch.zeros(3)
    with pytest.raises(KeyError) as err:
        convert_official(sd)
    assert 'network.0.0.attn.qkv.weight' in str(err.value)
    assert 'pos_embed' in str(err.value)


def test_wrong_arch_and_corrupted_file(tmp_path, fixture):
    src = tmp_path / 'official.pth'
    torch.save(fixture['state_dict'], src)
    proc = run_tool(CONVERTER, str(src), str(tmp_path / 'x.pth'), '--arch',
                    's', check=False)
    assert proc.returncode != 0 and 'is not DynaMixer-s' in proc.stderr
    broken = tmp_path / 'truncated.pth'
    broken.write_bytes(src.read_bytes()[:5000])
    proc = run_tool(CONVERTER, str(broken), str(tmp_path / 'x.pth'),
                    check=False)
    assert proc.returncode != 0 and 'corrupted or truncated' in proc.stderr


def test_no_code_execution_from_pickles(tmp_path):
    """A checkpoint whose pickle would run code is refused, not executed."""
    marker = tmp_path / 'pwned'

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), 'w'))

    src = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'x': Evil()}}, src)
    proc = run_tool(CONVERTER, str(src), str(tmp_path / 'x.pth'), check=False)
    assert proc.returncode != 0 and 'not loaded' in proc.stderr
    assert not marker.exists()
