"""Label typography (issue 11 §3-4): one type size and one set of baselines per field for the
whole batch (chunks included), numbers in the reader's locale, every script printed through the
font fallback chain, and the pre-flight that refuses what would not print before a job starts."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pikepdf
import pypdfium2
import pytest

from tests.conftest import add_user
from tests.unit.test_api import assert_error
from webapp.documents import Part
from webapp.documents.potting_lots import PottingLotLabels
from webapp.extensions import db
from webapp.models import Job, PottingLot
from webapp.nursery.labels import label_for
from webapp.pdf import fonts, qr
from webapp.pdf.labels import LabelData, LabelWriter, Typography, plan
from webapp.pdf.layout import PRESETS, part_bounds
from webapp.pdf.qr import module_fits

CREATED = datetime(2026, 11, 23, 9, 30)


@pytest.fixture
def api(client, token):
    class Api:
        def submit(self, params: dict):
            return client.post(
                "/api/v1/jobs",
                json={"kind": "potting_lot_labels", "params": params},
                headers={"Authorization": f"Bearer {token}"},
            )

    return Api()


NAMES = [
    "Acer",
    "Hydrangea macrophylla 'Bodensee'",
    "Rhododendron yakushimanum × degronianum subsp. heptamerum 'Koichiro Wada'",
    "Buxus",
    "Lavandula angustifolia 'Hidcote Blue Strain'",
]
LABEL = re.compile(rb"q 1 0 0 1 [-\d.]+ [-\d.]+ cm (.*?) ET Q", re.S)
TEXT = re.compile(rb"/F(\d+) ([\d.]+) Tf 1 0 0 1 ([-\d.]+) ([-\d.]+) Tm")


def batch(count: int) -> list[LabelData]:
    return [
        LabelData(
            title=f"P2648-{n:05d}",
            qr=f"P2648-{n:05d}",
            name=NAMES[n % len(NAMES)],
            details=f"P9 · {n * 100:,}× · 2026-W48",
            lines=("Kas 1 – tafel 04" if n % 3 else "", "Hovenier Ünal" if n % 2 else ""),
        )
        for n in range(count)
    ]


def render(path: Path, items: list[LabelData], layout: str = "a4_3x8", **options) -> Path:
    writer = LabelWriter(PRESETS[layout], created=CREATED, **options)
    for slot, label in enumerate(items):
        writer.add(slot, label)
    writer.output(path)
    return path


def label_texts(path: Path) -> list[list[tuple[float, float]]]:
    """Per label (in drawing order): (size, baseline) of each text line, title first."""
    out = []
    with pikepdf.open(path) as pdf:
        for page in pdf.pages:
            content = page.Contents.read_bytes()
            for block in LABEL.findall(content):
                out.append([(float(m[2]), float(m[4])) for m in TEXT.finditer(block)])
    return out


def page_texts(path: Path) -> list[str]:
    document = pypdfium2.PdfDocument(str(path))
    try:
        return [page.get_textpage().get_text_range() for page in document]
    finally:
        document.close()


def base_fonts(path: Path) -> set[str]:
    with pikepdf.open(path) as pdf:
        return {
            str(obj.BaseFont).split("+", 1)[1]
            for obj in pdf.objects
            if isinstance(obj, pikepdf.Dictionary) and obj.get("/Subtype") == "/Type0"
        }


class TestOneSizePerField:
    """Every label of a batch: the same size per field, the same baselines."""

    @pytest.mark.parametrize("key", ["a4_3x8", "roll_62x29", "a4_2x7"])
    def test_each_field_has_one_size_and_one_baseline_on_every_label(self, tmp_path, key):
        items = batch(24)
        labels = label_texts(render(tmp_path / "l.pdf", items, key))
        assert len(labels) == 24
        typo = plan(PRESETS[key], items)
        # Per baseline (relative to the label), the one size used there, on any label.
        sizes_at: dict[float, set[float]] = {}
        for runs in labels:
            for size, baseline in runs:
                sizes_at.setdefault(baseline, set()).add(size)
        assert all(len(sizes) == 1 for sizes in sizes_at.values()), sizes_at
        # The title, the name's lines and each detail field: one size across the batch.
        used = {size for runs in labels for size, _ in runs}
        expected = {typo.title, typo.name.size, *(f.size for f in typo.details if f.lines)}
        assert used == {round(s, 2) for s in expected}
        # The detail lines sit on the same baselines on every label that has them.
        detail_baselines = [tuple(b for s, b in runs if s != typo.name.size) for runs in labels]
        full = max(detail_baselines, key=len)
        for baselines in detail_baselines:
            assert set(baselines) <= set(full)

    def test_the_name_wraps_into_the_same_line_budget_everywhere(self, tmp_path):
        items = batch(10)
        typo = plan(PRESETS["roll_62x29"], items)
        assert typo.name.lines > 1  # the long Rhododendron wraps
        labels = label_texts(render(tmp_path / "l.pdf", items, "roll_62x29"))
        name_lines = [[b for s, b in runs[1:] if s == typo.name.size] for runs in labels]
        first_line = {lines[0] for lines in name_lines}
        assert len(first_line) == 1  # every name starts on the same baseline
        assert max(len(lines) for lines in name_lines) <= typo.name.lines

    def test_a_long_value_shrinks_its_field_for_the_whole_batch_only(self):
        short = batch(6)
        for item in short:
            object.__setattr__(item, "name", "Acer")
        longer = [*short[:5], LabelData("P1", "P1", "Acer", "P9 · 1,000,000× · 2026-W48 " * 2)]
        a, b = plan(PRESETS["roll_62x29"], short), plan(PRESETS["roll_62x29"], longer)
        assert b.details[0].size < a.details[0].size or b.details[0].lines > a.details[0].lines
        assert b.details[0].size >= 5.0  # never below the legible minimum on a preset
        assert b.details[1:] == a.details[1:]

    @pytest.mark.parametrize("key", list(PRESETS))
    @pytest.mark.parametrize("word", ["Hydrangea Bodensee", "שושנה אדומה גן", "桜 さくら 梅の花"])
    def test_nothing_is_shortened_when_the_plan_made_room_for_it(self, tmp_path, key, word, caplog):
        # Names that shrink on one line: the stored (rounded) size must still fit the widest.
        items = [LabelData(f"P{n}", f"P{n}", f"{word} {n}", "P9") for n in range(1000, 1040)]
        text = "".join(page_texts(render(tmp_path / "l.pdf", items, key)))
        assert "…" not in text
        assert not [r for r in caplog.records if "shortened" in r.getMessage()]

    def test_the_plan_survives_the_trip_through_the_job_as_json(self):
        typo = plan(PRESETS["a4_3x8"], batch(12))
        assert Typography.from_dict(typo.as_dict()) == typo


class TestChunks:
    """Chunks rendered by different workers draw with the plan made at submit."""

    def test_every_chunk_uses_the_batchs_sizes_even_when_its_own_names_are_short(
        self, ctx, lots, tmp_path
    ):
        long_lot = db.session.get(PottingLot, 40)
        long_lot.plant_name = "Rhododendron yakushimanum × degronianum subsp. heptamerum " * 2
        db.session.commit()
        kind = PottingLotLabels()
        prepared = kind.prepare(
            kind.parse({"lot_ids": list(range(1, 41)), "layout": "a4_3x8"}), None
        )
        job = Job(
            kind=kind.name,
            params=prepared.params,
            summary=prepared.summary,
            progress_total=prepared.total,
        )
        bounds = part_bounds(prepared.total, PRESETS["a4_3x8"], 1, 24)
        assert len(bounds) == 2
        sizes = []
        for index, (start, stop) in enumerate(bounds):
            path = tmp_path / f"part{index}.pdf"
            kind.render(job, FakeLease(), path, Part(index, start, stop))
            sizes.append({size for runs in label_texts(path) for size, _ in runs})
        assert sizes[0] == sizes[1]
        # Without the batch's plan the first chunk (short names only) would have chosen others.
        alone = plan(
            PRESETS["a4_3x8"], [label_for(db.session.get(PottingLot, i)) for i in range(1, 25)]
        )
        planned = Typography.from_dict(prepared.summary["typography"])
        assert alone.name != planned.name


class FakeLease:
    def progress(self, done: int, step: str | None = None, *, force: bool = False) -> None:
        pass


class TestNumbers:
    """Quantities as the table shows them: 1,200 in English, 1.200 in Dutch."""

    @pytest.mark.parametrize(("locale", "shown"), [("en", "1,200×"), ("nl", "1.200×")])
    def test_the_quantity_is_grouped_in_the_locale(self, ctx, lots, tmp_path, locale, shown):
        lot = db.session.get(PottingLot, 3)
        lot.quantity = 1200
        db.session.commit()
        assert shown in label_for(lot, locale).details
        kind = PottingLotLabels()
        prepared = kind.prepare(kind.parse({"lot_ids": [3], "locale": locale}), None)
        assert prepared.params["locale"] == locale
        job = Job(
            kind=kind.name, params=prepared.params, summary=prepared.summary, progress_total=1
        )
        kind.render(job, FakeLease(), tmp_path / "l.pdf", None)
        text = page_texts(tmp_path / "l.pdf")[0]
        assert shown in text and "1200×" not in text

    def test_the_api_takes_the_locale_of_the_request(self, app, client, token):
        response = client.post(
            "/api/v1/jobs",
            json={"kind": "potting_lot_labels", "params": {"lot_ids": [1]}},
            headers={"Authorization": f"Bearer {token}", "Accept-Language": "nl"},
        )
        assert response.status_code in (200, 202), response.get_data(as_text=True)
        assert response.get_json()["params"]["locale"] == "nl"


class TestScripts:
    """Hebrew, Arabic, CJK, Devanagari, Thai and emoji print with their fallback fonts."""

    @pytest.mark.parametrize(
        ("name", "font"),
        [
            ("שושנה אדומה", "NotoSansHebrew"),
            ("زهرة الياسمين", "NotoSansArabic"),
            ("桜 さくら 'Kanzan'", "NotoSansCJKJP"),
            ("नमस्ते गुलाब", "NotoSansDevanagari"),
            ("กุหลาบ สีแดง", "NotoSansThai"),
            ("Rosa 🌹 'Queen'", "Symbola"),
        ],
    )
    def test_the_name_extracts_back_exactly_and_uses_its_fallback_font(self, tmp_path, name, font):
        label = LabelData("P2648-00001", "P2648-00001", name, "P9 · 48×")
        path = render(tmp_path / "l.pdf", [label], "roll_62x29")
        lines = page_texts(path)[0].splitlines()
        if font == "NotoSansThai":  # marks are placed on their own: extracted out of order
            assert sorted(name.replace(" ", "")) == sorted(lines[1].replace(" ", ""))
        else:
            assert name in lines
        assert font in base_fonts(path)

    def test_latin_text_embeds_noto_sans_only(self, tmp_path):
        path = render(tmp_path / "l.pdf", batch(3), "roll_62x29")
        assert base_fonts(path) == {"NotoSans", "NotoSansBold"}

    def test_a_character_no_font_has_is_reported(self):
        assert fonts.missing("Rosa 𓀀 x") == ["𓀀"]
        assert fonts.missing("שושנה 桜 🌹 Łódź") == []


class TestPreflight:
    """What would not print is refused before the job starts: a 422 naming lots and chars."""

    def test_a_character_no_font_has_is_a_422_naming_the_lot_and_the_character(
        self,
        app,
        api,
    ):
        with app.app_context():
            lot = db.session.get(PottingLot, 2)
            lot.plant_name = "Papyrus 𓀀"
            number = lot.lot_number
            db.session.commit()
        error = assert_error(api.submit({"lot_ids": [1, 2, 3]}), 422, "invalid_params")
        message = error["fields"]["lot_ids"]
        assert f"{number}: ‘𓀀’ (U+13000)" in message
        with app.app_context():
            assert db.session.query(Job).count() == 0

    def test_a_filtered_print_names_the_filter(self, app, api):
        with app.app_context():
            lot = db.session.get(PottingLot, 5)
            lot.customer = "Tuin \U0010fffd"
            number = lot.lot_number
            db.session.commit()
        error = assert_error(api.submit({"filter": {}}), 422, "invalid_params")
        assert number in error["fields"]["filter"] and "U+10FFFD" in error["fields"]["filter"]

    def test_a_qr_code_too_fine_for_the_printer_is_refused_naming_layouts_that_work(
        self,
        app,
        api,
    ):
        with app.app_context():
            lot = db.session.get(PottingLot, 1)
            lot.lot_number = "P2648-" + "X" * 34  # 40 characters: a 29-module code
            db.session.commit()
        tiny = {"kind": "roll", "label_w": 20, "label_h": 10}
        error = assert_error(
            api.submit({"lot_ids": [1], "layout": "custom", "custom_layout": tiny}), 422
        )
        message = error["fields"]["layout"]
        assert "203 dpi" in message and "roll_62x29" in message

    def test_module_fits_compares_the_module_with_the_printers_dots(self):
        fits, module, smallest = module_fits("P2648-00001", 23.0, 203)
        assert fits and module > 1.0 and smallest == pytest.approx(2 * 25.4 / 203)
        assert not module_fits("P2648-" + "X" * 34, 6.0, 203)[0]

    def test_the_size_counted_by_shape_is_the_size_drawn(self):
        """A submit counts a code's modules once per mode and length: for every payload of a
        shape the count must be what encoding that very payload gives."""
        samples = [
            "0" * 7, "1234567", "P2648-00001", "P2648-99999", "p2648-00001", "Lot 1/2",
            "Vaste planten 12", "Vaste Planten 99", "Émile-42", "Ümit-433", "ורד-12",
            "玫瑰-12", "A" * 60, "B" * 60, "a" * 120, "z" * 120,
        ]  # fmt: skip
        qr._counts.clear()
        for payload in samples:
            assert qr.module_count(payload) == qr.encode(payload)[0], payload
        assert qr.shape("P2648-00001") == qr.shape("P2648-99999") != qr.shape("p2648-00001")


class TestPrintForm:
    """The print form shows the pre-flight's refusal next to its print buttons."""

    def test_the_refusal_names_the_lot_next_to_the_print_buttons(self, app, client, auth):
        from webapp.nursery.demo import seed_lots

        with app.app_context():
            add_user()
            seed_lots(5)
            lot = db.session.get(PottingLot, 4)
            lot.location = "Kas 𓀀"
            number = lot.lot_number
            db.session.commit()
        assert auth.login().status_code == 302
        response = client.post(
            "/nursery/potting-lots/print", data={}, headers={"Referer": "/nursery/potting-lots"}
        )
        assert response.status_code == 303
        page = client.get(response.headers["Location"]).get_data(as_text=True)
        error = re.search(r'<small id="err-print" class="field-error">(.*?)</small>', page, re.S)
        assert error is not None, "no message next to the print buttons"
        assert number in error[1] and "U+13000" in error[1]
        with app.app_context():
            assert db.session.query(Job).count() == 0
