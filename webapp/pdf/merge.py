"""Merge the chunk files of a big batch into one PDF, in linear time.

pikepdf's `pages.extend()` gets slower with every page already in the target (qpdf checks each
new page against all of them): 10 chunks of 1,000 labels take ~6 s that way, more than
rendering them. Here every page is copied with `copy_foreign` (qpdf copies the objects pages
share, such as fonts and the resources dict, once per source) and the page tree is built in
one step: ~0.5 s for 10,000 pages.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

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


class _Sink(io.RawIOBase):
    """The file qpdf writes to, which never lets a write error reach qpdf.

    qpdf throws a C++ exception when a write fails; with `deterministic_id` it throws it where
    nothing catches it, and the process gets `std::terminate` (SIGABRT): a full disk killed the
    worker and, with it, Dramatiq's whole pool. Here the first OSError is kept, later writes are
    dropped, and `save_pdf` raises the error in Python once qpdf has returned."""

    def __init__(self, target: IO[bytes]) -> None:
        super().__init__()
        self.target = target
        self.error: OSError | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        if self.error is None:
            try:
                self.target.write(view)
            except OSError as exc:
                self.error = exc
        return view.nbytes

    def flush(self) -> None:
        if self.error is None:
            try:
                self.target.flush()
            except OSError as exc:
                self.error = exc


#: How every PDF of ours is saved: the same inputs give the same bytes.
SAVE_OPTIONS: dict[str, Any] = {
    "deterministic_id": True,
    "compress_streams": True,
    "object_stream_mode": pikepdf.ObjectStreamMode.generate,
}


def save_pdf(document: pikepdf.Pdf, out: Path | IO[bytes]) -> None:
    """Save `document` to the file `out` (or a binary stream) with `SAVE_OPTIONS`; a disk that
    cannot take it raises OSError (ENOSPC, EIO …) here, in Python, never inside qpdf."""
    if not isinstance(out, Path | str):
        document.save(cast(BinaryIO, out), **SAVE_OPTIONS)
        return
    with open(out, "wb", buffering=1 << 20) as fh:
        sink = _Sink(fh)
        document.save(cast(BinaryIO, sink), **SAVE_OPTIONS)
        if sink.error is not None:
            raise sink.error
        fh.flush()


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
            save_pdf(merged, out)
            return len(kids)
    finally:
        for source in sources:
            source.close()
