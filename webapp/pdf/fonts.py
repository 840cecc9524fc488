"""Noto Sans (from the fontpkg-noto-sans wheel) for Latin, Greek and Cyrillic, and a fallback
chain of Noto families (Debian's fonts-noto-core and fonts-noto-cjk, `make system-deps`) plus
Symbola (monochrome emoji: Noto Color Emoji is a CBDT bitmap font fpdf2 cannot embed as
outlines) for every other script. `font_for(char)` names the font that draws a character, or
None when no installed font has it: the label kinds refuse such text before a job starts.

The wheel ships one variable TTF. Instancing it (fontTools) takes ~20 s, so the regular and bold
instances are made once per machine into a cache folder (`warm()`: `make install` and worker
boot call it) and loaded from there afterwards. The cached instances are also slimmed down:
without hinting and OpenType layout tables (fpdf2 uses neither without text shaping) they are
half the size, which cuts fpdf2's per-document font cost from ~155 ms to ~65 ms (loading in
`add_font`, subsetting in `output`) and makes each embedded subset smaller.
"""

from __future__ import annotations

import copy
import fcntl
import io
import logging
import os
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fontpkg_noto_sans import ROOT as NOTO_ROOT
from fontTools.ttLib import TTFont
from fpdf import FPDF
from fpdf.fonts import SubsetMap, TTFFont

# fpdf2 subsets the fonts of every document with fontTools, which logs ~30 INFO lines each time.
logging.getLogger("fontTools.subset").setLevel(logging.WARNING)

FAMILY = "noto"
VARIABLE_TTF = NOTO_ROOT / "files" / "NotoSans[wdth,wght].ttf"
WEIGHTS = {"": 400, "B": 700}
#: Bump when the way instances are made changes, so stale cached files are not used.
FORMAT = 3
#: Tables a PDF never needs from our fonts: layout (no text shaping), hinting, metadata.
DROP_TABLES = [
    "GSUB",
    "GPOS",
    "GDEF",
    "BASE",
    "JSTF",
    "MATH",
    "STAT",
    "hdmx",
    "meta",
    "DSIG",
    "FFTM",
    "fpgm",
    "prep",
    "cvt ",
    "cvar",
    "gasp",
    "VDMX",
    "LTSH",
]


def cache_dir() -> Path:
    default = Path(tempfile.gettempdir()) / "pressroom-fonts"
    return Path(os.environ.get("PRESSROOM_FONT_CACHE", default))


def instance_path(style: str) -> Path:
    """Where the static instance for `style` lives (the name changes with the source font)."""
    return cache_dir() / f"NotoSans-{WEIGHTS[style]}-{VARIABLE_TTF.stat().st_size}-f{FORMAT}.ttf"


def _make_instance(style: str, target: Path) -> None:
    from fontTools import subset
    from fontTools.ttLib import TTFont
    from fontTools.varLib.instancer import instantiateVariableFont

    font = instantiateVariableFont(TTFont(VARIABLE_TTF), {"wght": WEIGHTS[style], "wdth": 100})
    options = subset.Options(
        hinting=False,
        notdef_outline=True,
        recommended_glyphs=True,
        glyph_names=True,
        name_IDs=["*"],
        name_languages=["*"],
        layout_features=[],
        drop_tables=subset.Options().drop_tables + DROP_TABLES,
    )
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=font.getBestCmap().keys())  # every character the font has
    subsetter.subset(font)
    _name_instance(font, style)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    font.save(tmp)
    os.replace(tmp, target)


def _name_instance(font: Any, style: str) -> None:
    """Give the instance its own names and style bits: the instancer leaves the bold one called
    "Noto Sans Regular", so both fonts would share one PDF font name (BaseFont)."""
    sub = "Bold" if style == "B" else "Regular"
    names = {
        1: "Noto Sans",
        2: sub,
        3: f"Pressroom;NotoSans-{sub}",
        4: f"Noto Sans {sub}",
        6: f"NotoSans-{sub}",
    }
    table = font["name"]
    table.names = [record for record in table.names if record.nameID not in (16, 17)]
    for name_id, value in names.items():
        table.setName(value, name_id, 3, 1, 0x409)
        table.setName(value, name_id, 1, 0, 0)
    os2 = font["OS/2"]
    os2.fsSelection = (os2.fsSelection & ~0b1100001) | (0b100000 if style == "B" else 0b1000000)
    font["head"].macStyle = 1 if style == "B" else 0


@cache
def static_font(style: str) -> Path:
    """The static instance of the variable font for `style`, made once per machine."""
    target = instance_path(style)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Worker processes boot together: one makes the file, the others wait for it.
    with open(target.parent / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not target.exists():
                _make_instance(style, target)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return target


def warm() -> list[Path]:
    """Make sure both instances exist (slow the first time on a machine) and are parsed in this
    process; returns their paths."""
    for style in WEIGHTS:
        _loaded(style)
    return [static_font(style) for style in WEIGHTS]


@cache
def _loaded(style: str) -> tuple[TTFFont, bytes]:
    """fpdf2's parsed font (metrics, character map) and the file's bytes, once per process."""
    path = static_font(style)
    scratch = FPDF()
    scratch.add_font(FAMILY, style, path)
    font = scratch.fonts[FAMILY + style]
    assert isinstance(font, TTFFont)
    return font, path.read_bytes()


def add_fonts(pdf: FPDF) -> None:
    """Register regular and bold Noto Sans on `pdf` as family "noto" (subset on output).

    Like `pdf.add_font()`, but the parsing (~40 ms for both) is done once per process: each
    document gets a copy of the parsed font object with its own subset map, descriptor and a
    fresh (lazily read) fontTools font, which fpdf2's subsetter consumes on output.
    tests/unit/test_pdf_fpdf_internals.py checks the result is byte-identical to add_font().
    """
    for style in WEIGHTS:
        parsed, data = _loaded(style)
        font = copy.copy(parsed)
        font.i = len(pdf.fonts) + 1
        font.ttfont = TTFont(io.BytesIO(data), recalcTimestamp=False, lazy=True)
        font.desc = copy.copy(parsed.desc)
        font.missing_glyphs = []
        font.biggest_size_pt = 0
        font.subset = SubsetMap(font)
        pdf.fonts[FAMILY + style] = font


# -- the fallback chain ---------------------------------------------------------------------------

SYSTEM_FONTS = Path(os.environ.get("PRESSROOM_SYSTEM_FONTS", "/usr/share/fonts"))


@dataclass(frozen=True, slots=True)
class Fallback:
    """One font of the chain: its key (the PDF family name), file and whether its runs are shaped
    (HarfBuzz: joining, reordering, marks; RTL scripts are always shaped)."""

    key: str
    file: str  # relative to SYSTEM_FONTS
    shape: bool = True
    index: int = 0  # the face in a collection (.ttc)


_NOTO = "truetype/noto/NotoSans{}-Regular.ttf"
#: In order: the first font that has a character draws it.
FALLBACKS: tuple[Fallback, ...] = (
    *(
        Fallback(f"noto-{script.lower()}", _NOTO.format(script))
        for script in (
            "Hebrew",
            "Arabic",
            "Syriac",
            "Thaana",
            "Armenian",
            "Georgian",
            "Ethiopic",
            "Devanagari",
            "Bengali",
            "Gurmukhi",
            "Gujarati",
            "Oriya",
            "Tamil",
            "Telugu",
            "Kannada",
            "Malayalam",
            "Sinhala",
            "Thai",
            "Lao",
            "Khmer",
            "Myanmar",
            "Mongolian",
            "Tifinagh",
            "Cherokee",
            "CanadianAboriginal",
        )
    ),
    Fallback("noto-cjk", "opentype/noto/NotoSansCJK-Regular.ttc", shape=False),
    Fallback("noto-symbols", _NOTO.format("Symbols"), shape=False),
    Fallback("noto-symbols2", _NOTO.format("Symbols2"), shape=False),
    Fallback("noto-math", _NOTO.format("Math"), shape=False),
    Fallback("symbola", "truetype/ancient-scripts/Symbola_hint.ttf", shape=False),  # emoji
)
#: Scripts that need shaping (RTL, joining, reordering): drawn by their fallback font even where
#: Noto Sans has the characters (its instances carry no layout tables, and are never shaped).
COMPLEX = (
    (0x0590, 0x08FF),
    (0x0900, 0x0DFF),
    (0x0E00, 0x109F),
    (0x1780, 0x18AF),
    (0xA8E0, 0xA8FF),
    (0xFB1D, 0xFDFF),
    (0xFE70, 0xFEFF),
)
FALLBACK_BY_KEY = {font.key: font for font in FALLBACKS}
#: Characters that are no glyph: controls and joiners are dropped or handled by shaping.
_INVISIBLE = frozenset(range(0x20)) | {0x7F, 0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0xFE0E, 0xFE0F}


def fallback_path(font: Fallback) -> Path:
    return SYSTEM_FONTS / font.file


def installed_fallbacks() -> list[Fallback]:
    return [font for font in FALLBACKS if fallback_path(font).is_file()]


@cache
def _cmap(key: str) -> frozenset[int]:
    """The characters the font `key` ("" for Noto Sans) has (read once per process)."""
    if key in ("", "B"):
        return frozenset(_loaded(key)[0].cmap)
    font = FALLBACK_BY_KEY[key]
    ttfont = TTFont(fallback_path(font), fontNumber=font.index, lazy=True)
    try:
        return frozenset(ttfont.getBestCmap() or {})
    finally:
        ttfont.close()


_font_for: dict[tuple[str, int], str | None] = {}


def font_for(char: str, style: str = "") -> str | None:
    """The key of the font that draws `char` in `style`: `style` itself for Noto Sans ("" or
    "B"), a fallback's key, or None when no installed font has it. Fallback cmaps are read
    only when a character needs them, so Latin-only text never loads them."""
    code = ord(char)
    key = (style, code)
    if key in _font_for:
        return _font_for[key]
    found: str | None = None
    if code in _INVISIBLE or (code in _cmap(style) and not any(a <= code <= b for a, b in COMPLEX)):
        found = style
    else:
        for font in installed_fallbacks():
            if code in _cmap(font.key):
                found = font.key
                break
    _font_for[key] = found
    return found


def missing(text: str) -> list[str]:
    """The characters of `text` that no installed font has, in order, once each."""
    seen: dict[str, None] = {}
    for char in text:
        if char not in seen and font_for(char) is None:
            seen[char] = None
    return list(seen)


@cache
def _loaded_fallback(key: str) -> TTFFont:
    font = FALLBACK_BY_KEY[key]
    scratch = FPDF()
    scratch.add_font(key, "", fallback_path(font), collection_font_number=font.index)
    parsed = scratch.fonts[key]
    assert isinstance(parsed, TTFFont)
    return parsed


def add_fallback(pdf: FPDF, key: str) -> TTFFont:
    """Register the fallback font `key` on `pdf` (parsed once per process, like add_fonts);
    only documents with text that needs it get it, so other PDFs embed nothing more."""
    existing = pdf.fonts.get(key)
    if isinstance(existing, TTFFont):
        return existing
    parsed = _loaded_fallback(key)
    font = copy.copy(parsed)
    font.i = len(pdf.fonts) + 1
    spec = FALLBACK_BY_KEY[key]
    font.ttfont = TTFont(
        fallback_path(spec), fontNumber=spec.index, recalcTimestamp=False, lazy=True
    )
    font.desc = copy.copy(parsed.desc)
    font.missing_glyphs = []
    font.biggest_size_pt = 0
    font.subset = SubsetMap(font)
    pdf.fonts[key] = font
    return font


def fallback_font(key: str) -> TTFFont:
    """The process's parsed fallback font (for measuring; not for a document)."""
    return _loaded_fallback(key)


if __name__ == "__main__":  # `python -m webapp.pdf.fonts`: warm the cache (make install)
    for path in warm():
        print(path)
