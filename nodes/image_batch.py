"""A picture's size, and batches of pictures: Get Image Size, Image Batch, Select from Batch."""

from __future__ import annotations

from nodegraph import Input, NodeUserError, Output, Param, PortType as T, node
from nodegraph.imaging import map_pil

from .image_transform import RESAMPLE, resizer, size_of

MAX_BATCH = 4096


@node(
    "image.size",
    title="Get Image Size",
    category="image/batch",
    inputs=[Input("image", T.IMAGE)],
    outputs=[
        Output("width", T.INT, "in pixels"),
        Output("height", T.INT, "in pixels"),
        Output("batch", T.INT, "how many pictures the batch holds"),
    ],
)
def image_size(ctx, image):
    """A picture's width and height and its batch's length, to drive other nodes (Resize, Crop, Math) or name
    files (Format Text)."""
    batch, _, height, width = (int(n) for n in image.shape)
    return {"width": width, "height": height, "batch": batch}


@node(
    "image.batch",
    title="Image Batch",
    category="image/batch",
    inputs=[
        Input("image_a", T.IMAGE, description="first in the batch; its size is the batch's"),
        Input("image_b", T.IMAGE, description="put after image_a"),
    ],
    params=[
        Param("resize", T.ENUM, "fill", choices=("fill", "exact", "error"),
              description="when image_b's size differs from image_a's: fill scales it to cover that size and "
                          "crops the centre (as ComfyUI does); exact stretches it; error refuses"),
    ],
    outputs=[Output("image", T.IMAGE)],
)
def image_batch(ctx, image_a, image_b, resize):
    """Put two pictures (or batches) into one batch, e.g. to save, grid or encode them together."""
    import torch

    if image_b.shape[-2:] != image_a.shape[-2:]:
        if resize == "error":
            raise NodeUserError(f"image_b is {size_of(image_b)} and image_a {size_of(image_a)}: a batch holds "
                                f"one size; set resize to fill or exact to bring image_b to {size_of(image_a)}")
        width, height = image_a.shape[-1], image_a.shape[-2]
        image_b = map_pil(image_b, resizer(resize, width, height, RESAMPLE["lanczos"]))
    return {"image": torch.cat([image_a, image_b.to(image_a.device, image_a.dtype)])}


@node(
    "image.select",
    title="Select from Batch",
    category="image/batch",
    inputs=[Input("image", T.IMAGE, description="a batch of pictures")],
    params=[
        Param("index", T.INT, 0, min=-MAX_BATCH, max=MAX_BATCH - 1,
              description="the first picture to take: 0 is the first, -1 the last"),
        Param("length", T.INT, 1, min=1, max=MAX_BATCH,
              description="how many pictures from index on (fewer where the batch ends first)"),
    ],
    outputs=[Output("image", T.IMAGE)],
)
def select(ctx, image, index, length):
    """Take one picture (or a run of them) out of a batch, e.g. the best of four samples."""
    count = image.shape[0]
    start = index + count if index < 0 else index
    if not 0 <= start < count:
        held = f"{count} picture{'s' if count != 1 else ''}"
        raise NodeUserError(f"index {index} is outside the batch, which holds {held}: use 0 to {count - 1}, "
                            f"or -1 to -{count} counting from the end")
    return {"image": image[start:start + length]}
