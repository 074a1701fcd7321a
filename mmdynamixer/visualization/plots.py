# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Figures of :class:`~.mixing.LayerMixing` (matplotlib, as MMPretrain's
visualizer draws)."""
import io
from typing import Optional, Sequence

import numpy as np

from ..utils.fileio import atomic_write
from .mixing import LayerMixing

OPS = {'h': 'column op', 'w': 'row op'}


def _overlay(ax, image: np.ndarray, grid_map: Optional[np.ndarray], token,
             token_pixels: int, title: str, op: Optional[str] = None):
    """``image`` with ``grid_map`` (one value per token, over the op's
    column or row only) over it, each value covering its token's pixels,
    and ``token`` outlined."""
    from matplotlib.patches import Rectangle
    h, w = image.shape[:2]
    ax.imshow(image, extent=(0, w, h, 0))
    r, c = token
    if grid_map is not None:
        H, W = grid_map.shape
        support = np.zeros_like(grid_map, dtype=bool)
        support[:, c] = op == 'h'
        support[r, :] |= op == 'w'
        ax.imshow(np.ma.masked_where(~support, grid_map), cmap='inferno',
                  alpha=0.75, vmin=0, interpolation='nearest',
                  extent=(0, W * token_pixels, H * token_pixels, 0))
    ax.add_patch(Rectangle((c * token_pixels, r * token_pixels),
                           token_pixels, token_pixels, fill=False,
                           edgecolor='cyan', linewidth=2))
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_title(title, fontsize=9)
    ax.axis('off')


def mixing_figure(image: np.ndarray, mixing: LayerMixing,
                  tokens: Sequence[tuple], segment: Optional[int] = None,
                  title: str = ''):
    """A figure: for each token, the weights of the column op and the row op
    on the image; the full mixing matrices of the first token's column and
    row; the layer's branch weights as bars."""
    import matplotlib
    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt
    ops = [op for op in OPS if getattr(mixing, 'cols' if op == 'h'
                                       else 'rows') is not None]
    rows = len(tokens) + 1
    fig, axes = plt.subplots(rows, 3, figsize=(10, 3.2 * rows),
                             squeeze=False)
    which = 'mean over segments' if segment is None else \
        f'segment {segment}'
    for k, token in enumerate(tokens):
        for j, op in enumerate(ops):
            grid_map = mixing.token_map(token, op, segment).numpy()
            _overlay(axes[k, j], image, grid_map, token, mixing.token_pixels,
                     f'token {token}: {OPS[op]} ({which})', op)
        _overlay(axes[k, 2], image, None, token, mixing.token_pixels,
                 f'as the model sees it; token {token}')
        for j in range(len(ops), 2):
            axes[k, j].axis('off')
    last = axes[-1]
    r, c = tokens[0]
    for j, op in enumerate(ops):
        index = c if op == 'h' else r
        matrix = mixing.matrix(op, index, segment).numpy()
        im = last[j].imshow(matrix, cmap='inferno', vmin=0)
        last[j].set_title(f"{OPS[op]} of {'column' if op == 'h' else 'row'} "
                          f'{index}: {matrix.shape[0]}x{matrix.shape[1]}',
                          fontsize=9)
        last[j].set_xlabel('input token')
        last[j].set_ylabel('output token')
        fig.colorbar(im, ax=last[j], fraction=0.046)
    bars = last[2]
    if mixing.branch_weights:
        names = list(mixing.branch_weights)
        bars.bar(names, [mixing.branch_weights[n] for n in names],
                 color=['tab:blue', 'tab:orange', 'tab:green'][:len(names)])
        bars.set_ylim(0, 1)
        bars.set_title('branch weights (mean over channels)', fontsize=9)
    else:
        bars.axis('off')
    for j in range(len(ops), 2):
        last[j].axis('off')
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def figure_png(fig) -> bytes:
    """The figure as PNG bytes (closed afterwards)."""
    import matplotlib.pyplot as plt
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def save_or_show(fig, out_file: str, show: bool = False):
    """Show ``fig`` in a window, or write it to ``out_file`` as a PNG that
    is never partly written (a failed run leaves no file behind)."""
    if show:
        import matplotlib.pyplot as plt
        plt.show()
    else:
        atomic_write(out_file, figure_png(fig))


def cam_figure(image: np.ndarray, cam: np.ndarray, title: str = '',
               method: str = 'Grad-CAM'):
    """The image and its class activation map ``cam`` (``(h, w)`` in
    [0, 1], made by ``method``) over it."""
    import matplotlib
    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt
    h, w = image.shape[:2]
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.4))
    axes[0].imshow(image, extent=(0, w, h, 0))
    axes[0].set_title('as the model sees it', fontsize=9)
    axes[1].imshow(image, extent=(0, w, h, 0))
    im = axes[1].imshow(cam, cmap='jet', alpha=0.5, vmin=0, vmax=1,
                        extent=(0, w, h, 0))
    axes[1].set_title(method, fontsize=9)
    fig.colorbar(im, ax=axes[1], fraction=0.046)
    for ax in axes:
        ax.axis('off')
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
