"""Running an image-to-image model tile by tile, overlapping tiles cross-faded so that no seam shows.

A super-resolution network sees only a neighbourhood of each pixel, so a large picture can be cut into tiles
that each fit in memory. Near a tile's edge, though, the network sees padding where it would have seen the
neighbouring pixels, so two abutting tiles disagree along their border: a visible seam. Tiles here overlap
by ``overlap`` input pixels, and inside each overlap the two outputs are cross-faded with linear weights that
sum to one, so every output pixel leans on the tile that saw more of its surroundings and what is left of
the disagreement is spread over the overlap instead of stepping at one line. Edge tiles are moved inwards
rather than shrunk, so every tile has the same size (one the model's size requirements accept).
"""

from __future__ import annotations

from typing import Callable


def spans(size: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """``(start, end)`` of the tiles along one side of ``size`` pixels: as few ``tile``-long tiles as cover it
    with at least ``overlap`` pixels shared between neighbours, spread evenly from one edge to the other (so
    the overlaps are all about the same, never one sliver of a last tile)."""
    if tile >= size:
        return [(0, size)]
    n = -(-(size - overlap) // (tile - overlap))  # ceil: n tiles cover n * tile - (n - 1) * overlap pixels
    starts = [k * (size - tile) // (n - 1) for k in range(n)]
    return [(s, s + tile) for s in starts]


def weights(along: list[tuple[int, int]], index: int, scale: int, device=None):
    """The blend weights of tile ``index`` along one side, in output pixels: 1 where no other tile reaches,
    rising linearly across the overlap with the tile before and falling across the overlap with the next."""
    import torch

    start, end = along[index]
    w = torch.ones((end - start) * scale, device=device)
    if index > 0:
        n = (along[index - 1][1] - start) * scale
        if n > 0:
            w[:n] = torch.minimum(w[:n], (torch.arange(n, device=device) + 0.5) / n)
    if index < len(along) - 1:
        n = (end - along[index + 1][0]) * scale
        if n > 0:
            w[-n:] = torch.minimum(w[-n:], (n - 0.5 - torch.arange(n, device=device)) / n)
    return w


def count(height: int, width: int, tile: int, overlap: int) -> int:
    """How many tiles one picture of this size takes (1 without tiling)."""
    if tile <= 0:
        return 1
    return len(spans(height, tile, overlap)) * len(spans(width, tile, overlap))


def run(model: Callable, image, scale: int, tile: int, overlap: int, on_tile: Callable[[], None] | None = None):
    """``model`` ((1, C, h, w) -> (1, C, h*scale, w*scale)) over every picture of the batch ``image``
    (B, C, H, W): whole when ``tile`` is 0, else in ``tile`` x ``tile`` tiles overlapping by ``overlap`` and
    blended. ``on_tile()`` runs after each call of the model (a progress report and a cancellation point).
    The result is float32, (B, C, H*scale, W*scale)."""
    import torch

    b, c, h, w = image.shape
    out = torch.empty((b, c, h * scale, w * scale), dtype=torch.float32, device=image.device)
    if tile <= 0 or (tile >= h and tile >= w):
        for i in range(b):
            out[i:i + 1] = _checked(model(image[i:i + 1]), (h, w), scale)
            if on_tile:
                on_tile()
        return out
    rows, cols = spans(h, tile, overlap), spans(w, tile, overlap)
    row_w = [weights(rows, i, scale, image.device) for i in range(len(rows))]
    col_w = [weights(cols, j, scale, image.device) for j in range(len(cols))]
    total = torch.zeros((h * scale, w * scale), dtype=torch.float32, device=image.device)
    for (y0, y1), wy in zip(rows, row_w):
        for (x0, x1), wx in zip(cols, col_w):
            total[y0 * scale:y1 * scale, x0 * scale:x1 * scale] += wy[:, None] * wx[None, :]
    for i in range(b):
        acc = torch.zeros((c, h * scale, w * scale), dtype=torch.float32, device=image.device)
        for (y0, y1), wy in zip(rows, row_w):
            for (x0, x1), wx in zip(cols, col_w):
                piece = _checked(model(image[i:i + 1, :, y0:y1, x0:x1]), (y1 - y0, x1 - x0), scale)
                acc[:, y0 * scale:y1 * scale, x0 * scale:x1 * scale] += piece[0].float() * (wy[:, None] * wx[None, :])
                if on_tile:
                    on_tile()
        out[i] = acc / total
    return out


def _checked(result, size: tuple[int, int], scale: int):
    want = (size[0] * scale, size[1] * scale)
    if tuple(result.shape[-2:]) != want:
        raise RuntimeError(f"the model turned {size[1]}x{size[0]} pixels into {result.shape[-1]}x{result.shape[-2]}, "
                           f"not the {want[1]}x{want[0]} its scale of {scale} promises")
    return result
