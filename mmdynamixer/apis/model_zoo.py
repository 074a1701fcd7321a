# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Register this package's model zoo with MMPretrain's ModelHub, so that
``mmpretrain.list_models('dynamixer*')`` and
``mmpretrain.get_model('dynamixer-s_8xb256_in1k')`` find our models."""
import os.path as osp

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MODEL_INDEX = osp.join(REPO_ROOT, 'model-index.yml')


def register_model_zoo(model_index: str = MODEL_INDEX) -> bool:
    """Register the models of ``model_index`` (once); False if the file is
    not there (a non-editable install ships no configs)."""
    from mmpretrain.apis import ModelHub
    if not osp.isfile(model_index):
        return False
    if ModelHub.has('dynamixer-s_8xb256_in1k'):
        return True
    ModelHub.register_model_index(model_index, config_prefix=REPO_ROOT)
    return True
