"""ComfyUI interop at the door: its workflow files (API and UI formats, PNGs it wrote) become our
documents with a report of what did not map, and ours go back out in its API format. Nothing past the
door knows ComfyUI exists.
"""

from __future__ import annotations

from .convert import PLACEHOLDER, Report, convert
from .export import ExportError, export_api
from .graph import kind, loads_png_chunks, read


def import_document(doc: dict, source: str = "<workflow>", base_dir=None, registry=None) -> tuple[dict, Report]:
    """A ComfyUI document (either format) -> our workflow document and the import report; ``base_dir``
    is the folder of the file it came from (see :func:`convert.comfy_picture`)."""
    return convert(read(doc, source), base_dir, registry)


__all__ = ["PLACEHOLDER", "ExportError", "Report", "export_api", "import_document", "kind", "loads_png_chunks"]
