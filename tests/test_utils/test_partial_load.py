"""Partial loads on purpose keep PyTorch's contract: the DynaMixer backbone's
and head's own ``load_state_dict(sd, strict=False)`` return the missing and
unexpected keys; a whole model's partial load needs the scoped opt-in
``mmdynamixer.allow_partial_load()``, and is refused (naming it) without;
``strict=True`` stays strict. On the Quick start's digits classifier, with
its head left out of the checkpoint: the fine-tuning idiom."""
import logging
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

import mmdynamixer
from mmdynamixer.utils import (CheckpointMismatchError, PartialLoadMixin,
                               torch_features)
from mmdynamixer.utils.checkpoint import partial_load_allowed
from mmdx_testing import DIGITS_CONFIG, REPO

needs_guard = pytest.mark.skipif(
    not torch_features.LOAD_STATE_DICT_PRE_HOOK, reason=(
        'torch < 2.5 has no public load_state_dict pre-hook, so the guard '
        'that refuses a partial load of a whole model is off there (one '
        'log line says so: tests/test_utils/test_torch_features.py)'))

# what a strict load that does not fit raises: the guard's error where
# torch has the pre-hook, torch's own strict error otherwise
STRICT_ERROR = CheckpointMismatchError \
    if torch_features.LOAD_STATE_DICT_PRE_HOOK else RuntimeError


def digits_classifier():
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(osp.join(REPO, DIGITS_CONFIG))
    return MODELS.build(cfg.model)


def own(module):
    """``module``, whose own load_state_dict(strict=False) is PyTorch's."""
    assert isinstance(module, PartialLoadMixin), (
        f'{type(module).__name__} must list PartialLoadMixin first among its '
        'bases (e.g. class DynaMixer(PartialLoadMixin, BaseBackbone)) for '
        'its own load_state_dict(strict=False) to work as in PyTorch')
    return module


@pytest.fixture(scope='module')
def trained():
    """The state dict of a 'trained' digits classifier: values far from
    any init, so that a load is visible."""
    torch.manual_seed(3)
    state = digits_classifier().state_dict()
    for value in state.values():
        if value.is_floating_point():
            value.normal_()
    return state


def head_keys(model):
    """The independent expectation: the head's keys of the model's own
    state dict."""
    return {k for k in model.state_dict() if k.startswith('head.')}


def without_head(state):
    return {k: v for k, v in state.items() if not k.startswith('head.')}


def under(state, prefix):
    return {k[len(prefix):]: v for k, v in state.items()
            if k.startswith(prefix)}


def assert_loaded(module, state):
    own = module.state_dict()
    for key, value in state.items():
        assert torch.equal(own[key], value), key


class Captured(logging.Handler):
    """The messages MMEngine's current logger emits (what print_log logs)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    def __enter__(self):
        MMLogger.get_current_instance().addHandler(self)
        return self

    def __exit__(self, *exc):
        MMLogger.get_current_instance().removeHandler(self)


def test_fine_tuning_idiom_loads_the_backbone(trained):
    model = digits_classifier()
    part = under(without_head(trained), 'backbone.')
    result = own(model.backbone).load_state_dict(part, strict=False)
    assert list(result.missing_keys) == []
    assert list(result.unexpected_keys) == []
    assert_loaded(model.backbone, part)


@needs_guard
def test_whole_model_strict_false_is_refused_naming_the_opt_in(trained):
    model = digits_classifier()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as err:
        model.load_state_dict(without_head(trained), strict=False)
    message = str(err.value)
    assert 'with mmdynamixer.allow_partial_load():' in message, message
    assert 'MMDYNAMIXER_PARTIAL_LOAD=1' in message
    assert 'model.backbone.load_state_dict(part, strict=False)' in message
    for key in head_keys(model):
        assert key[len('head.'):] in message, (key, message)
    # refused before anything was loaded into the head
    for key in head_keys(model):
        assert torch.equal(model.state_dict()[key], before[key]), key


def test_whole_model_loads_within_the_context_manager(trained):
    model = digits_classifier()
    expected_missing = head_keys(model)
    assert expected_missing  # the digits classifier has a head with weights
    with Captured() as log, mmdynamixer.allow_partial_load():
        result = model.load_state_dict(without_head(trained), strict=False)
    assert set(result.missing_keys) == expected_missing
    assert len(result.missing_keys) == len(expected_missing)
    assert list(result.unexpected_keys) == []
    assert_loaded(model, without_head(trained))
    if torch_features.LOAD_STATE_DICT_PRE_HOOK:  # the guard's summary
        text = '\n'.join(log.messages)
        assert 'mmdynamixer.allow_partial_load(): loading the rest' in text
        assert 'keep their random init' in text
        for key in expected_missing:
            assert key[len('head.'):] in text, (key, text)


def test_head_alone_returns_torchs_keys(trained):
    model = digits_classifier()
    part = under(trained, 'head.')
    removed = {'fc.bias', 'norm.weight'}
    added = {'fc.extra', 'scale'}
    partial = {k: v for k, v in part.items() if k not in removed}
    partial.update({k: torch.zeros(2) for k in added})
    result = own(model.head).load_state_dict(partial, strict=False)
    assert set(result.missing_keys) == removed
    assert set(result.unexpected_keys) == added
    assert_loaded(model.head, {k: part[k] for k in partial if k in part})


def test_backbone_alone_returns_torchs_keys(trained):
    model = digits_classifier()
    part = under(trained, 'backbone.')
    removed = set(sorted(part)[:3])
    added = {'stages.0.0.mixer.extra.weight', 'norm9.bias'}
    partial = {k: v for k, v in part.items() if k not in removed}
    partial.update({k: torch.zeros(2) for k in added})
    result = own(model.backbone).load_state_dict(partial, strict=False)
    assert set(result.missing_keys) == removed
    assert set(result.unexpected_keys) == added
    assert_loaded(model.backbone, {k: part[k] for k in partial
                                   if k in part})


@pytest.mark.parametrize('name', ['backbone', 'head'])
def test_strict_load_of_a_mismatched_dict_still_raises(trained, name):
    model = digits_classifier()
    part = under(trained, name + '.')
    dropped = sorted(part)[0]
    part.pop(dropped)
    with pytest.raises(STRICT_ERROR) as err:
        getattr(model, name).load_state_dict(part)  # strict by default
    assert dropped in str(err.value)
    with pytest.raises(STRICT_ERROR):
        getattr(model, name).load_state_dict(part, strict=True)


def test_strict_false_still_refuses_shape_mismatches(trained):
    """As PyTorch documents: strict=False ignores missing and unexpected
    keys, not mis-shaped ones."""
    model = digits_classifier()
    part = under(trained, 'head.')
    part['fc.weight'] = torch.zeros(3, 3)
    with pytest.raises(RuntimeError, match='size mismatch'):
        own(model.head).load_state_dict(part, strict=False)


@needs_guard
def test_guard_is_back_after_a_direct_non_strict_load(trained):
    """The direct strict=False load steps the guard aside for that call
    only, also when the call raised."""
    model = digits_classifier()
    own(model.backbone).load_state_dict({}, strict=False)
    bad = dict(trained)
    bad['head.fc.weight'] = torch.zeros(3, 3)
    with pytest.raises(RuntimeError, match='size mismatch'):
        own(model.head).load_state_dict(under(bad, 'head.'), strict=False)
    with pytest.raises(CheckpointMismatchError):
        model.load_state_dict(without_head(trained), strict=False)
    with pytest.raises(CheckpointMismatchError):
        model.backbone.load_state_dict({})


def test_context_manager_is_scoped(trained):
    model = digits_classifier()
    assert not partial_load_allowed()
    with mmdynamixer.allow_partial_load():
        assert partial_load_allowed()
        with mmdynamixer.allow_partial_load():  # nests
            assert partial_load_allowed()
        assert partial_load_allowed()
    assert not partial_load_allowed()
    with pytest.raises(KeyError):
        with mmdynamixer.allow_partial_load():
            raise KeyError('the body failed')
    assert not partial_load_allowed()
    if torch_features.LOAD_STATE_DICT_PRE_HOOK:  # the guard is on again
        with pytest.raises(CheckpointMismatchError):
            model.load_state_dict(without_head(trained), strict=False)


def test_environment_variable_still_opts_out(trained, monkeypatch):
    monkeypatch.setenv('MMDYNAMIXER_PARTIAL_LOAD', '1')
    assert partial_load_allowed()
    model = digits_classifier()
    with Captured() as log:
        result = model.load_state_dict(without_head(trained), strict=False)
    assert set(result.missing_keys) == head_keys(model)
    if torch_features.LOAD_STATE_DICT_PRE_HOOK:
        assert 'MMDYNAMIXER_PARTIAL_LOAD=1: loading the rest' in \
            '\n'.join(log.messages)
    monkeypatch.delenv('MMDYNAMIXER_PARTIAL_LOAD')
    assert not partial_load_allowed()
