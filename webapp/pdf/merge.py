"""Merge the chunk files of a big batch into one PDF, in linear time.

pikepdf's `pages.extend()` gets slower with every page already in the target (qpdf checks each
new page against all of them): 10 chunks of 1,000 labels take ~6 s that way, more than
rendering them. Here every page is copied with `copy_foreign` (qpdf copies the objects pages
share, such as fonts and the resources dict, once per source) and the page tree is built in
one step: ~0.5 s for 10,000 pages.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pikepdf

#: Page attributes a page may inherit from its page-tree node (PDF 32000 §7.7.3.4).
INHERITABLE = ("/Resources", "/MediaBox", "/CropBox", "/Rotate")


def _pages(source: pikepdf.Pdf) -> list[pikepdf.Dictionary]:
    """The page objects of `source` in order, each holding the attributes it inherits."""
    tree = source.Root.Pages
    kids = list(tree.Kids)
    if all(kid.get("/Type") == "/Page" for kid in kids):  # flat, as fpdf2 and our writer make
        inherited = [(key, tree[key]) for key in INHERITABLE if key in tree]
        for obj in kids:
            for key, value in inherited:
                if key not in obj:
                    obj[key] = value
        return list(kids)  # type: ignore[arg-type]  # /Kids of a page tree are dictionaries
    pages = [page.obj for page in source.pages]
    for obj in pages:
        node = obj.get("/Parent")
        while node is not None:  # the new tree has none of these: put them on the page
            for key in INHERITABLE:
                if key in node and key not in obj:
                    obj[key] = node[key]
            node = node.get("/Parent")
    return pages


def merge_pdfs(paths: Sequence[Path], out: Path) -> int:
    """Write the pages of `paths`, in order, to `out`; returns the number of pages.

    Deterministic (same inputs, same bytes); the document info (title, dates) comes from the
    first file. Raises `pikepdf.PdfError` for a broken input.
    """
    sources = [pikepdf.open(path) for path in paths]
    try:
        with pikepdf.Pdf.new() as merged:
            tree = merged.Root.Pages
            kids = []
            for source in sources:
                for obj in _pages(source):
                    copy = merged.copy_foreign(obj)
                    copy.Parent = tree
                    kids.append(copy)
            tree.Kids = pikepdf.Array(kids)
            tree.Count = len(kids)
            if sources and "/Info" in sources[0].trailer:
                merged.trailer.Info = merged.copy_foreign(sources[0].trailer.Info)
            merged.save(
                out,
                deterministic_id=True,
                compress_streams=True,
                object_stream_mode=pikepdf.ObjectStreamMode.generate,
            )
            return len(kids)
    finally:
        for source in sources:
            source.close()
