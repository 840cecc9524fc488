"""Noto Sans (from the fontpkg-noto-sans wheel) for every text, so any Unicode text renders.

The wheel ships one variable TTF. Instancing it (fontTools) is slow, so the regular and bold
instances are made once per machine into a cache folder and loaded from there afterwards.
"""

from __future__ import annotations

import os
import tempfile
from functools import cache
from pathlib import Path

from fontpkg_noto_sans import ROOT as NOTO_ROOT
from fpdf import FPDF

FAMILY = "noto"
VARIABLE_TTF = NOTO_ROOT / "files" / "NotoSans[wdth,wght].ttf"
WEIGHTS = {"": 400, "B": 700}


def _cache_dir() -> Path:
    return Path(os.environ.get("PRESSROOM_FONT_CACHE", Path(tempfile.gettempdir()) / "pressroom-fonts"))


@cache
def static_font(style: str) -> Path:
    """A static instance of the variable font for `style`, made once and reused."""
    from fontTools.ttLib import TTFont
    from fontTools.varLib.instancer import instantiateVariableFont

    target = _cache_dir() / f"NotoSans-{WEIGHTS[style]}-{VARIABLE_TTF.stat().st_size}.ttf"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        font = instantiateVariableFont(TTFont(VARIABLE_TTF), {"wght": WEIGHTS[style], "wdth": 100})
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        font.save(tmp)
        os.replace(tmp, target)
    return target


def add_fonts(pdf: FPDF) -> None:
    """Register regular and bold Noto Sans on `pdf` as family "noto" (subset on output)."""
    for style in WEIGHTS:
        pdf.add_font(FAMILY, style, static_font(style))
