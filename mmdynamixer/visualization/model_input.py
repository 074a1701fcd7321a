# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""A config's classifier with its checkpoint, and an image as the config's
test pipeline feeds it: what the visualization tools draw from."""
import os.path as osp

import numpy as np
from mmengine.dataset import Compose, default_collate
from mmengine.registry import init_default_scope

from ..utils import (extract_state_dict, load_checkpoint_file,
                     load_state_dict_checked)


def init_classifier(cfg, checkpoint: str):
    """The config's model on the CPU, in eval mode, with ``checkpoint``
    loaded strictly (a checkpoint of another model stops with the key
    listing, on every torch) and its ``dataset_meta``."""
    from mmpretrain.apis import init_model
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    # the checkpoint holds every weight: no init_cfg checkpoint to load
    cfg.model.get('backbone', {}).pop('init_cfg', None)
    model = init_model(cfg, None, device='cpu')
    ckpt = load_checkpoint_file(checkpoint)
    load_state_dict_checked(model, extract_state_dict(ckpt), checkpoint)
    meta = ckpt.get('meta') or {}
    if meta.get('dataset_meta'):
        model.dataset_meta = meta['dataset_meta']
    return model.eval()


def pipeline_image(cfg, model, path: str):
    """``(image, inputs)``: the image after the config's test pipeline, RGB
    ``uint8`` ``(h, w, 3)``, and the preprocessed ``(1, 3, h, w)`` input."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'Image not found: {path}')
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    dataset = loader.dataset
    while 'pipeline' not in dataset and 'dataset' in dataset:
        dataset = dataset.dataset  # inside wrappers (ImageIntegrityDataset)
    data = Compose(dataset.pipeline)(dict(img_path=path))
    image = data['inputs'].permute(1, 2, 0).numpy()  # as loaded: BGR
    if getattr(model.data_preprocessor, '_channel_conversion', False):
        image = image[..., ::-1]
    batch = model.data_preprocessor(default_collate([data]), False)
    return np.ascontiguousarray(image), batch['inputs']
