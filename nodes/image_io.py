"""Getting pictures in and out: Load Image, Save Image, Preview."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageOps

from nodegraph import NodeUserError, Output, Param, PortType as T, node
from nodegraph.imaging import from_pil, mask_from_pil, to_pil, workflow_pnginfo
from nodegraph.node import Input

READ_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF")
MAX_PIXELS = 8192 * 8192  # refuse decompression bombs before decoding a pixel


def _file_identity(params, ctx):
    """A file's path, size and modification time: editing the file on disk dirties the node."""
    path = ctx.input_path(params["path"])
    try:
        st = path.stat()
    except OSError:
        return {"path": str(path), "missing": True}
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def open_image(path: Path) -> Image.Image:
    """Open and decode an image file, turning every way it can fail into a one-line error."""
    try:
        im = Image.open(path, formats=READ_FORMATS)
    except FileNotFoundError:
        raise NodeUserError(f"no such image file: {path}") from None
    except IsADirectoryError:
        raise NodeUserError(f"{path} is a folder, not an image") from None
    except Image.DecompressionBombError:
        raise NodeUserError(f"{path}: image too large to decode safely") from None
    except (Image.UnidentifiedImageError, OSError, ValueError) as e:
        raise NodeUserError(f"{path}: not a readable PNG, JPEG, WebP or TIFF image ({e})") from None
    width, height = im.size
    if width * height > MAX_PIXELS:
        im.close()
        raise NodeUserError(f"{path}: {width}x{height} pixels is over the {MAX_PIXELS:,} pixel limit")
    try:
        im.load()
        return ImageOps.exif_transpose(im)
    except (OSError, ValueError, SyntaxError) as e:
        raise NodeUserError(f"{path}: damaged image ({e})") from None


@node(
    "image.load",
    title="Load Image",
    category="image/io",
    params=[Param("path", T.STRING, "", hint="file", description="PNG, JPEG, WebP or TIFF; relative to the workflow")],
    outputs=[Output("image", T.IMAGE), Output("mask", T.MASK, "the alpha channel (opaque = 1); all ones without alpha")],
    identity=_file_identity,
)
def load_image(ctx, path):
    """Read an image file, applying its EXIF orientation; its alpha channel becomes a mask."""
    if not path:
        raise NodeUserError("no file chosen: set 'path'")
    im = open_image(ctx.input_path(path))
    has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    rgba = im.convert("RGBA")
    alpha = rgba.getchannel("A") if has_alpha else Image.new("L", im.size, 255)
    return {"image": from_pil([rgba.convert("RGB")], ctx.device), "mask": mask_from_pil([alpha], ctx.device)}


FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


@node(
    "image.save",
    title="Save Image",
    category="image/io",
    inputs=[Input("image", T.IMAGE)],
    outputs=[Output("image", T.IMAGE, "the same picture, for chaining")],
    params=[
        Param("filename_prefix", T.STRING, "nodegraph", description="may include sub-folders of the output folder"),
        Param("format", T.ENUM, "png", choices=tuple(FORMATS)),
        Param("quality", T.INT, 95, min=1, max=100, description="JPEG and WebP quality"),
        Param("embed_workflow", T.BOOL, True, description="store the workflow in the PNG so it can be reopened"),
    ],
    output=True,
)
def save_image(ctx, image, filename_prefix, format, quality, embed_workflow):
    """Write each picture as <prefix>_00001.png, _00002.png, ... never overwriting a file."""
    options = {"quality": quality} if format in ("jpeg", "webp") else {}
    embed = format == "png" and embed_workflow

    def write(picture, tmp: Path) -> None:  # tmp lies in the folder the file will be in
        extra = {"pnginfo": workflow_pnginfo(ctx.workflow_text_for(tmp.parent))} if embed else {}
        picture.save(tmp, FORMATS[format], **options, **extra)

    for picture in to_pil(image):
        ctx.new_output_file(filename_prefix, f".{format}", lambda tmp: write(picture, tmp))
    return {"image": image}


@node(
    "image.preview",
    title="Preview",
    category="image/io",
    inputs=[Input("image", T.IMAGE)],
    outputs=[Output("image", T.IMAGE)],
    output=True,
)
def preview(ctx, image):
    """Show a picture in the editor without writing a file."""
    return {"image": image}

