# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Register this package's model zoo with MMPretrain's ModelHub, so that
``mmpretrain.list_models('dynamixer*')`` and
``mmpretrain.get_model('dynamixer-s_8xb256_in1k')`` find our models."""
import os.path as osp

PACKAGE = osp.dirname(osp.dirname(osp.abspath(__file__)))


def config_root() -> str:
    """Where ``model-index.yml`` and ``configs/`` are: ``mmdynamixer/.mim``
    in an installed wheel (as in OpenMMLab's packages), the checkout for an
    editable install or a source tree."""
    for root in (osp.join(PACKAGE, '.mim'), osp.dirname(PACKAGE)):
        if osp.isfile(osp.join(root, 'model-index.yml')) and \
                osp.isdir(osp.join(root, 'configs', 'dynamixer')):
            return root
    raise FileNotFoundError(
        f'No model-index.yml with configs/ in {osp.join(PACKAGE, ".mim")} or '
        f'{osp.dirname(PACKAGE)}: this mmdynamixer was installed without its '
        'configs. Reinstall it from a wheel or checkout (`pip install .`).')


def register_model_zoo() -> None:
    """Register the models of the model index with MMPretrain (once)."""
    from mmpretrain.apis import ModelHub
    if ModelHub.has('dynamixer-s_8xb256_in1k'):
        return
    root = config_root()
    ModelHub.register_model_index(osp.join(root, 'model-index.yml'),
                                  config_prefix=root)
