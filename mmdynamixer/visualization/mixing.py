# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""What a DynaMixer layer mixes, on one image: the generated weights of its
column and row ops on the token grid, and its branch weights.

Used by ``tools/visualization/vis_mixing.py`` and by the diagnostics hook's
pictures; the figures are drawn by :mod:`.plots`.
"""
from dataclasses import dataclass
from typing import Optional

import torch

from ..models.backbones import DynaMixer


@dataclass
class LayerMixing:
    """The mixing of one layer on one image (batch index 0).

    Attributes:
        grid (tuple): ``(H, W)`` token grid of the layer.
        cols (Tensor): ``(W, S, H, H)``: for each column ``c`` and segment,
            the column op's weights: row ``j`` holds, for output token
            ``(j, c)``, the weight of each input ``(i, c)`` (rows sum to 1).
            None without a column op.
        rows (Tensor): ``(H, S, W, W)``: the same for the row op along each
            row. None without a row op.
        branch_weights (dict): mean weight of each branch (``'h'``, ``'w'``,
            ``'c'``) over the channels; empty without reweighting.
        token_pixels (int): pixels per token side in the model's input.
    """
    grid: tuple
    cols: Optional[torch.Tensor]
    rows: Optional[torch.Tensor]
    branch_weights: dict
    token_pixels: int

    def token_map(self, token, op: str, segment: Optional[int] = None):
        """``(H, W)`` weights with which ``op`` (``'h'``: column, ``'w'``:
        row) mixes every token into ``token = (row, col)``: zero outside
        the token's column (row); averaged over segments, or of one."""
        r, c = token
        H, W = self.grid
        grid = torch.zeros(H, W)
        matrices = self.cols if op == 'h' else self.rows
        if matrices is None:
            kind = 'column' if op == 'h' else 'row'
            raise ValueError(f'This layer has no {kind} op (see its '
                             'branches).')
        if op == 'h':
            weights = matrices[c, :, r]  # (S, H): inputs (i, c)
        else:
            weights = matrices[r, :, c]  # (S, W): inputs (r, i)
        weights = weights.mean(0) if segment is None else weights[segment]
        if op == 'h':
            grid[:, c] = weights
        else:
            grid[r, :] = weights
        return grid

    def matrix(self, op: str, index: int, segment: Optional[int] = None):
        """The full mixing matrix ``(out, in)`` of column ``index`` (``op``
        ``'h'``) or row ``index`` (``'w'``), averaged over segments or of
        one."""
        matrices = (self.cols if op == 'h' else self.rows)[index]
        return matrices.mean(0) if segment is None else matrices[segment]


def effective_matrices(op, x: torch.Tensor, axis: int,
                       stride) -> torch.Tensor:
    """``(P, Q, S, L, L)``: the weight of every input token (last axis) in
    every output token of the sequences along ``axis`` of ``x`` (as the op
    mixes them: ``P`` and ``Q`` index the dims before and after ``axis``),
    whatever the windows: each output token comes from one window, whose
    ``N`` weights are put at the window's input positions (padding has
    weight 0)."""
    L = x.shape[axis]
    win = op.windows(L, stride, x.device)
    weights = op.mixing_matrices(x, axis, stride).float()
    P, Q, S, count, out, N = weights.shape  # (P, Q, S, windows, out, N)
    if win.index is None:
        return weights[:, :, :, 0]
    positions = win.index.view(count, 1, N).expand(count, out, N)
    full = weights.new_zeros(P, Q, S, count, out, L)
    full.scatter_add_(-1, positions.expand_as(weights), weights)
    return full.flatten(3, 4)[:, :, :, :L]  # output token k * out + r


def layer_mixing(model, inputs: torch.Tensor, stage: int,
                 layer: int) -> LayerMixing:
    """Run ``model`` on ``inputs`` (one preprocessed image, ``(1, 3, H,
    W)``) and return what layer ``layer`` of stage ``stage`` of its DynaMixer
    backbone mixes. Ranges are checked with errors that name them."""
    backbone = find_dynamixer(model)
    stage, layer = check_position(backbone, stage, layer)
    block = backbone.stages[stage][layer].mixer
    captured = {}

    def keep_input(module, args, output):
        captured['x'] = args[0].detach()

    def keep_branch_weights(module, args, output):
        captured['branch_weights'] = output.detach()

    handles = [block.register_forward_hook(keep_input)]
    if block.reweight is not None:
        handles.append(block.reweight.register_forward_hook(
            keep_branch_weights))
    try:
        with torch.no_grad():
            backbone(inputs[:1])
    finally:
        for handle in handles:
            handle.remove()
    x = captured['x']  # (1, H, W, C), the block's input
    matrices = {}
    with torch.no_grad():
        for branch, op, axis, stride in block.token_mixers():
            # (1, W, S, H, H) for columns, (H, 1, S, W, W) for rows
            full = effective_matrices(op, x, axis, stride)
            matrices[branch] = full[0] if axis == 1 else full[:, 0]
    branch_weights = {}
    if 'branch_weights' in captured:  # (1, C, K): mean over the channels
        branch_weights = dict(zip(
            block.branches,
            captured['branch_weights'][0].float().mean(0).tolist()))
    return LayerMixing(tuple(x.shape[1:3]), matrices.get('h'),
                       matrices.get('w'), branch_weights,
                       backbone.stage_strides[stage])


def find_dynamixer(model) -> DynaMixer:
    backbone = model if isinstance(model, DynaMixer) else getattr(
        model, 'backbone', None)
    if not isinstance(backbone, DynaMixer):
        raise ValueError(
            f'The model has no DynaMixer backbone (got '
            f'{type(backbone).__name__}): these pictures show DynaMixer\'s '
            'generated mixing weights; use a DynaMixer config and '
            'checkpoint.')
    return backbone


def check_position(backbone: DynaMixer, stage: int, layer: int):
    """``(stage, layer)`` made non-negative, or a ValueError naming the
    valid ranges."""
    num = backbone.num_stages
    if not -num <= stage < num:
        raise ValueError(f'--stage {stage} is out of range: the model has '
                         f'{num} stages, valid are 0..{num - 1}.')
    stage %= num
    depth = len(backbone.stages[stage])
    if not -depth <= layer < depth:
        raise ValueError(f'--layer {layer} is out of range: stage {stage} '
                         f'has {depth} layers, valid are 0..{depth - 1}.')
    return stage, layer % depth


def check_tokens(tokens, grid):
    """Each ``(row, col)`` inside the ``grid``, or a ValueError naming the
    valid range."""
    H, W = grid
    for r, c in tokens:
        if not (0 <= r < H and 0 <= c < W):
            raise ValueError(
                f'--tokens {r},{c} is outside the {H}x{W} token grid of this '
                f'layer: valid are rows 0..{H - 1} and columns 0..{W - 1}.')
    return tokens
