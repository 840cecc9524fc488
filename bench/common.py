"""Shared by the benchmarks: sample labels, the two baselines, timing and machine facts.

Baselines, written here so every run measures them on the same machine as our renderer:
- `seed_render`: the seed method the nursery used before Pressroom: a reportlab canvas and a
  `qrcode` PNG image per label (automatic version and mask choice), Helvetica text.
- `MinimalWriter`: a minimal hand-written PDF writer: raw objects and operators, core fonts
  (Helvetica, WinAnsi), no text measuring; it draws the same vector QR path as ours
  (`webapp.pdf.qr.encode`), so the ratio shows only the cost of writing the PDF with fpdf2.
"""

from __future__ import annotations

import io
import os
import platform
import random
import sys
import time
import zlib
from collections.abc import Callable, Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/x.py` puts bench/, not the project, on the path
    sys.path.insert(0, str(ROOT))

from webapp.nursery.demo import random_lot  # noqa: E402
from webapp.nursery.labels import label_for  # noqa: E402
from webapp.pdf import labels as label_module  # noqa: E402
from webapp.pdf.labels import LabelData, LabelWriter  # noqa: E402
from webapp.pdf.layout import Layout  # noqa: E402
from webapp.pdf.qr import encode, modules  # noqa: E402

MM = 72 / 25.4  # points per millimetre
CREATED = datetime(2026, 11, 23, 8, 0)


def sample_labels(count: int, seed: int = 48) -> list[LabelData]:
    """`count` labels with the demo data's mix of names, sizes, places and customers."""
    rng = random.Random(seed)
    today = date(2026, 11, 23)
    labels = []
    for n in range(1, count + 1):
        lot = random_lot(rng, n, today)
        lot.id = n
        labels.append(label_for(lot))
    return labels


def render_ours(labels: list[LabelData], layout: Layout, out: Path) -> None:
    """Our writer, as a worker renders a chunk of new lots: the per-label caches (a lot's QR
    code, its composed text block) are emptied first, so a repeated run does not hit them. The
    per-text caches (glyph widths, fitted names and detail lines) and the QR row cache stay
    warm, as they are in a worker after its first chunk."""
    modules.cache_clear()
    label_module._body.cache_clear()
    writer = LabelWriter(layout, created=CREATED)
    for slot, label in enumerate(labels):
        writer.add(slot, label)
    writer.output(out)


# -- the minimal hand-written writer ------------------------------------------------------------


def _pdf_text(text: str) -> str:
    raw = text.encode("cp1252", "replace").decode("latin-1")
    return raw.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


class MinimalWriter:
    """Raw PDF: pages, content streams (deflated), two core fonts, an xref table."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.pages: list[list[str]] = []
        h, w = layout.label_h, layout.label_w
        self.pad = max(1.5, h * 0.06)
        self.qr = min(h - 2 * self.pad, w * 0.42)
        self.scale = min(h, 2 * w / 3) / 29

    def add(self, slot: int, label: LabelData) -> None:
        page, x, y = self.layout.place(slot)
        while len(self.pages) <= page:
            self.pages.append([])
        ops = self.pages[page]
        page_h = self.layout.page_h
        count, runs = encode(label.qr)
        scale = self.qr / count * MM
        qr_top = y + (self.layout.label_h - self.qr) / 2
        ops.append(
            f"q 0 g {scale:.4f} 0 0 {-scale:.4f} {(x + self.pad) * MM:.2f} "
            f"{(page_h - qr_top) * MM:.2f} cm {runs} f Q"
        )
        tx = (x + 2 * self.pad + self.qr) * MM
        baseline = y + self.pad
        for font, size, text in (
            ("F2", 13, label.title),
            ("F1", 8.5, label.name),
            ("F1", 6.5, label.details),
            *(("F1", 6.5, line) for line in label.lines),
        ):
            size *= self.scale
            baseline += size * 1.2 / MM
            ops.append(
                f"BT /{font} {size:.2f} Tf {tx:.2f} {(page_h - baseline) * MM:.2f} Td "
                f"({_pdf_text(text)}) Tj ET"
            )

    def output(self, path: Path) -> None:
        w, h = self.layout.page_w * MM, self.layout.page_h * MM
        objects = [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            None,  # the page tree, once the pages are numbered
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold "
            b"/Encoding /WinAnsiEncoding >>",
            b"<< /Font << /F1 3 0 R /F2 4 0 R >> >>",
        ]
        kids = []
        for ops in self.pages or [[]]:
            stream = zlib.compress("\n".join(ops).encode("latin-1"))
            objects.append(
                b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream"
                % (len(stream), stream)
            )
            objects.append(
                f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {w:.2f} {h:.2f}] "
                f"/Resources 5 0 R /Contents {len(objects)} 0 R >>".encode()
            )
            kids.append(f"{len(objects)} 0 R")
        objects[1] = f"<< /Type /Pages /Count {len(kids)} /Kids [{' '.join(kids)}] >>".encode()
        out = bytearray(b"%PDF-1.4\n")
        offsets = []
        for number, body in enumerate(objects, start=1):
            offsets.append(len(out))
            out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
        xref = len(out)
        out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
        out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
        out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
            len(objects) + 1,
            xref,
        )
        path.write_bytes(out)


def render_minimal(labels: list[LabelData], layout: Layout, out: Path) -> None:
    writer = MinimalWriter(layout)
    for slot, label in enumerate(labels):
        writer.add(slot, label)
    writer.output(out)


# -- the seed method ----------------------------------------------------------------------------


def render_seed(labels: list[LabelData], layout: Layout, out: Path) -> None:
    """reportlab canvas + a qrcode PNG per label, as the nursery's old request handler did."""
    import qrcode
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(out), pagesize=(layout.page_w * MM, layout.page_h * MM), invariant=1)
    pad = max(1.5, layout.label_h * 0.06)
    size = min(layout.label_h - 2 * pad, layout.label_w * 0.42)
    scale = min(layout.label_h, 2 * layout.label_w / 3) / 29
    page = 0
    for slot, label in enumerate(labels):
        index, x, y = layout.place(slot)
        if index > page:
            pdf.showPage()
            page = index
        png = io.BytesIO()
        qrcode.make(label.qr).save(png, format="PNG")
        png.seek(0)
        top = layout.page_h - y  # reportlab's y grows upwards
        pdf.drawImage(
            ImageReader(png),
            (x + pad) * MM,
            (top - (layout.label_h + size) / 2) * MM,
            size * MM,
            size * MM,
        )
        baseline = top - pad
        for font, pt, text in (
            ("Helvetica-Bold", 13, label.title),
            ("Helvetica", 8.5, label.name),
            ("Helvetica", 6.5, label.details),
            *(("Helvetica", 6.5, line) for line in label.lines),
        ):
            pt *= scale
            baseline -= pt * 1.2 / MM
            pdf.setFont(font, pt)
            pdf.drawString((x + 2 * pad + size) * MM, baseline * MM, text)
    pdf.showPage()
    pdf.save()


# -- timing and machine facts -------------------------------------------------------------------


STAFF_EMAIL, STAFF_PASSWORD = "staff@example.com", "staff"  # the benchmarks' staff user


def seed_database(lots: int) -> Any:
    """In an app context: migrate the database, add the staff user and `lots` demo lots;
    returns the user."""
    from webapp.cli import init_db
    from webapp.extensions import db
    from webapp.models import Role, User
    from webapp.nursery.demo import seed_lots

    init_db()
    user = User(email=STAFF_EMAIL, role=Role.STAFF, name="Staff")
    user.set_password(STAFF_PASSWORD)
    db.session.add(user)
    db.session.commit()
    if lots:
        seed_lots(lots)
    return user


def best_of(repeat: int, run: Callable[[], object]) -> float:
    """The fastest of `repeat` runs in seconds: the least disturbed by other work on the box."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"load average {load_average()}"
    )


def rss_kib(pids: Iterable[int]) -> int:
    """Sum of the current resident set sizes of `pids`, from /proc (KiB)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total


def hwm_kib(pid: int) -> int:
    """Peak resident set size of `pid` (VmHWM, KiB); 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def children(pid: int) -> list[int]:
    """Every descendant of `pid`, from /proc/*/stat (no psutil)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        kids = [child for child, ppid in parents.items() if ppid == parent]
        found.extend(kids)
        todo.extend(kids)
    return found
