"""Every language in LANGUAGES: complete catalogues, the user's choice, Accept-Language, placeholders
that survive translation, and messages stored as codes (webapp/messages.py) shown in the reader's
language with the reader's number grouping.

Adding a language to `LANGUAGES` (config) is enough for every test here to cover it: the catalogue
tests and the code tests run once per language other than English."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flask_babel
import pytest
import sqlalchemy as sa
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, render_template_string
from flask.testing import FlaskClient
from flask_babel import force_locale, gettext

from tests.conftest import AuthActions, add_user
from tests.unit.test_ui import Page, page_of
from webapp import ROOT, documents, errors
from webapp.config import DEFAULTS
from webapp.documents.base import _PYDANTIC
from webapp.extensions import db
from webapp.i18n import FIELD_LABELS
from webapp.messages import CATALOGUE, GAVE_UP, UNITS, Msg, number, render
from webapp.models import Artifact, Job, User, utcnow
from webapp.templating import FILTER_LABELS, LAYOUT_NAMES, ORIGIN_LABELS, STATUS_LABELS
from webapp.views.errors import PAGE_MESSAGES

TRANSLATIONS = ROOT / "webapp" / "translations"
POT = TRANSLATIONS / "messages.pot"
#: Every language the site offers except English, the language of the sources.
TRANSLATED = [lang for lang in DEFAULTS["LANGUAGES"] if lang != DEFAULTS["BABEL_DEFAULT_LOCALE"]]
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")
#: The code scan reads these packages (workers store codes too).
SOURCES = (ROOT / "webapp", ROOT / "workers")


def po_path(lang: str) -> Path:
    return TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po"


def read_catalogue(path: Path, lang: str | None = None) -> Catalog:
    with path.open("rb") as f:
        return read_po(f, locale=lang)


def forms(message: Message) -> list[str]:
    return list(message.string) if isinstance(message.string, tuple | list) else [message.string]


def ids(message: Message) -> list[str]:
    return list(message.id) if isinstance(message.id, tuple | list) else [message.id]


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


@pytest.fixture(scope="module", autouse=True)
def compiled_catalogues() -> None:
    """`make install` compiles the .mo files (git-ignored); do the same when one is missing or stale."""
    for lang in TRANSLATED:
        po, mo = po_path(lang), po_path(lang).with_suffix(".mo")
        if not po.exists() or (mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime):
            continue
        tmp = mo.with_suffix(".mo.tmp")
        with tmp.open("wb") as f:
            write_mo(f, read_catalogue(po, lang))
        tmp.replace(mo)


def test_english_and_at_least_dutch_are_configured():
    assert DEFAULTS["BABEL_DEFAULT_LOCALE"] == "en" and "en" in DEFAULTS["LANGUAGES"]
    assert "nl" in TRANSLATED


@pytest.mark.parametrize("lang", TRANSLATED)
class TestCatalogue:
    """webapp/translations/<lang>: every message translated, none fuzzy, placeholders intact."""

    def test_every_entry_is_translated_and_none_is_fuzzy(self, lang):
        assert po_path(lang).exists(), f"{lang} is in LANGUAGES but has no {po_path(lang)}"
        catalogue = read_catalogue(po_path(lang), lang)
        untranslated = [m.id for m in catalogue if m.id and not all(s.strip() for s in forms(m))]
        fuzzy = [m.id for m in catalogue if m.id and m.fuzzy]
        assert not untranslated, untranslated
        assert not fuzzy, fuzzy
        assert not catalogue.fuzzy  # the header is not fuzzy either (pybabel compile skips it)
        assert not catalogue.obsolete, sorted(catalogue.obsolete)  # no #~ leftovers
        assert len(catalogue) > 150

    def test_every_plural_entry_has_all_its_forms(self, lang):
        catalogue = read_catalogue(po_path(lang), lang)
        for message in catalogue:
            if message.id and message.pluralizable:
                assert len(forms(message)) == catalogue.num_plurals and all(forms(message)), (
                    message.id
                )

    def test_the_template_and_the_catalogue_have_the_same_messages(self, lang):
        pot = {ids(m)[0] for m in read_catalogue(POT) if m.id}
        po = {ids(m)[0] for m in read_catalogue(po_path(lang), lang) if m.id}
        assert not pot - po, sorted(pot - po)  # run `pybabel update`
        assert not po - pot, sorted(po - pot)

    def test_placeholders_survive_translation(self, lang):
        """Same placeholder names as the English, and every form formats without error."""
        for message in read_catalogue(po_path(lang), lang):
            if not message.id:
                continue
            wanted = {name for text in ids(message) for name in placeholders(text)}
            for text in forms(message):
                assert placeholders(text) == wanted, (message.id, text)
                if wanted or message.python_format:
                    assert text % dict.fromkeys(wanted, 7)  # raises on a broken placeholder


def test_the_template_holds_every_message_in_the_sources():
    """Run the extraction (babel.cfg) and compare: a new UI string needs `pybabel extract`."""
    with (ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    in_sources = {
        ids_[0] if isinstance(ids_, tuple) else ids_
        for _file, _line, ids_, _comments, _context, *_ in extract_from_dir(
            str(ROOT), method_map, options_map
        )
    }
    in_pot = {ids(m)[0] for m in read_catalogue(POT) if m.id}
    assert len(in_sources) > 150  # the extraction did find the templates and views
    assert not in_sources - in_pot, sorted(in_sources - in_pot)


# -- messages stored as codes ------------------------------------------------------------------------


def shown_messages() -> dict[str, str]:
    """Every English message the code keeps in a table and translates where it is shown."""
    shown = {f"CATALOGUE[{code!r}]": text for code, text in CATALOGUE.items()}
    shown["GAVE_UP"] = GAVE_UP
    for unit, (one, many) in UNITS.items():
        shown[f"UNITS[{unit!r}][0]"], shown[f"UNITS[{unit!r}][1]"] = one, many
    tables: dict[str, dict[Any, str]] = {
        "FIELD_LABELS": FIELD_LABELS,
        "PAGE_MESSAGES": PAGE_MESSAGES,
        "STATUS_LABELS": STATUS_LABELS,
        "ORIGIN_LABELS": ORIGIN_LABELS,
        "LAYOUT_NAMES": LAYOUT_NAMES,
        "FILTER_LABELS": FILTER_LABELS,
    }
    for table, entries in tables.items():
        for key, text in entries.items():
            shown[f"{table}[{key!r}]"] = text
    for name in documents.names():
        kind = documents.get(name)
        assert kind is not None
        if not type(kind).__module__.startswith("webapp."):
            continue  # a test-only kind (tests/support) that another test module registered
        shown[f"{name}.title"] = kind.title
        if kind.back_label:
            shown[f"{name}.back_label"] = kind.back_label
    return shown


@pytest.mark.parametrize("lang", TRANSLATED)
class TestCodesAreTranslated:
    """A code, unit noun, field label or page message without a translation fails here, per language."""

    def test_every_shown_message_has_a_translation(self, lang):
        catalogue = read_catalogue(po_path(lang), lang)
        missing = {}
        for where, text in shown_messages().items():
            entry = catalogue.get(text)
            if entry is None or entry.fuzzy or not all(s.strip() for s in forms(entry)):
                missing[where] = text
        assert not missing, f"untranslated in {lang}: {missing}"

    def test_the_site_renders_every_code_in_the_language(self, app, lang):
        """The compiled catalogue is the one in use: each code renders as its translation."""
        catalogue = read_catalogue(po_path(lang), lang)
        with app.test_request_context(headers={"Accept-Language": lang}):
            wrong = {}
            for code, text in CATALOGUE.items():
                names = placeholders(text)
                params = {name: f"<{name}>" for name in names}
                entry = catalogue.get(text)
                expected = forms(entry)[0] if entry and entry.string else text
                if render(code, params) != (expected % params if names else expected):
                    wrong[code] = render(code, params)
            for noun in (noun for nouns in UNITS.values() for noun in nouns):
                entry = catalogue.get(noun)
                if gettext(noun) != (forms(entry)[0] if entry and entry.string else noun):
                    wrong[noun] = gettext(noun)
        assert not wrong, f"the compiled {lang} catalogue is stale (pybabel compile): {wrong}"

    def test_every_kind_counts_in_a_unit_with_nouns(self, lang):
        for name in documents.names():
            assert documents.get(name).unit in UNITS, name  # type: ignore[union-attr]


# -- every code the sources raise is in the catalogue ---------------------------------------------


def _problem_classes() -> set[str]:
    found, todo = set(), [errors.Problem]
    while todo:
        cls = todo.pop()
        found.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return found


#: Calls that take a message code as their first argument: Msg(code, {params}) and every error.
CODE_FIRST = {"Msg", "FieldProblem", *_problem_classes()}
#: Calls that take it second: InvalidParams.field(name, code), RowError.of(line, code),
#: FilterError(field, code), lease.progress(done, step).
CODE_SECOND = {"field", "of", "FilterError", "progress"}
#: Keyword arguments of those calls that are not message parameters.
NOT_PARAMS = {"field", "fields", "force", "attempts", "items"}
#: Keywords that set a code column directly (Job(step_code="waiting")).
CODE_KEYWORDS = {"step_code", "error_code"}


@dataclass(frozen=True)
class CodeUse:
    code: str
    params: frozenset[str] | None  # None: not known from the source (a variable, a ** splat)
    where: str


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _literals(node: ast.expr) -> list[str]:
    """The string constants an argument can be: "x", or "x" if … else "y"."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _literals(node.body) + _literals(node.orelse)
    return []


def _params(call: ast.Call, name: str, position: int) -> frozenset[str] | None:
    if name == "Msg":
        given = (
            call.args[1]
            if len(call.args) > 1
            else next((k.value for k in call.keywords if k.arg == "params"), None)
        )
        if given is None:
            return frozenset()
        if isinstance(given, ast.Dict) and all(
            isinstance(k, ast.Constant) and isinstance(k.value, str) for k in given.keys
        ):
            return (
                frozenset(k.value for k in given.keys if isinstance(k, ast.Constant)) - NOT_PARAMS
            )
        return None
    if any(k.arg is None for k in call.keywords) or len(call.args) > position + 1:
        return None
    return frozenset(k.arg for k in call.keywords if k.arg) - NOT_PARAMS


def code_uses(source: str, filename: str = "<source>") -> Iterator[CodeUse]:
    """Every message code literal in `source`, with the parameter names it is raised with."""
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        where = f"{filename}:{node.lineno}"
        for keyword in node.keywords:
            if keyword.arg in CODE_KEYWORDS:
                for code in _literals(keyword.value):
                    yield CodeUse(code, None, where)
        name = _name(node.func)
        if name in CODE_FIRST:
            position = 0
        elif name in CODE_SECOND:
            position = 1
        else:
            continue
        if len(node.args) <= position:
            continue
        for code in _literals(node.args[position]):
            yield CodeUse(code, _params(node, name, position), where)


def source_code_uses() -> list[CodeUse]:
    uses: list[CodeUse] = []
    for package in SOURCES:
        for path in sorted(package.rglob("*.py")):
            if "migrations" in path.parts:
                continue  # a migration's codes are history, not messages
            uses.extend(code_uses(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT))))
    return uses


class TestCodesInTheSources:
    def test_the_scan_finds_what_each_kind_of_call_raises(self):
        source = "\n".join(
            [
                'Msg("a1")',
                'Msg("a2", {"total": 1, "attempts": 2})',
                'messages.Msg("a3", params)',
                'raise PermanentError("b1", id=3)',
                'raise jobs.Conflict("b2")',
                'raise InvalidParams.field("copies", "c1", limit=4)',
                'RowError.of(0, "c2", **values)',
                'FieldProblem("c3", field="lot_ids")',
                'raise FilterError("week", "c4", value=v)',
                'ctx.progress(0, "d1", force=True, parts=2)',
                'Msg("d2" if dead else "d3")',
                'Job(kind="x", step_code="e1")',
                'render_template("x.html")',
                'print("not a code")',
            ]
        )
        found = {use.code: use.params for use in code_uses(source)}
        assert found == {
            "a1": frozenset(),
            "a2": {"total"},
            "a3": None,
            "b1": {"id"},
            "b2": frozenset(),
            "c1": {"limit"},
            "c2": None,
            "c3": frozenset(),
            "c4": {"value"},
            "d1": {"parts"},
            "d2": frozenset(),
            "d3": frozenset(),
            "e1": None,
        }

    def test_every_code_the_sources_use_is_in_the_catalogue(self):
        uses = source_code_uses()
        assert len(uses) > 40  # the scan did find the engine, the kinds, the views, the importer
        unknown = sorted(f"{use.where}: {use.code!r}" for use in uses if use.code not in CATALOGUE)
        assert not unknown, "add these codes to webapp/messages.py CATALOGUE:\n" + "\n".join(
            unknown
        )

    def test_each_code_is_raised_with_the_parameters_its_message_names(self):
        wrong = []
        for use in source_code_uses():
            if use.code in CATALOGUE and use.params is not None:
                wanted = placeholders(CATALOGUE[use.code])
                if set(use.params) != wanted:
                    wrong.append(
                        f"{use.where}: {use.code} given {sorted(use.params)}, "
                        f"its message names {sorted(wanted)}"
                    )
        assert not wrong, "\n".join(wrong)

    def test_pydantics_errors_map_to_codes_filled_by_the_one_value_they_get(self):
        for pydantic_type, (code, key) in _PYDANTIC.items():
            assert code in CATALOGUE, pydantic_type
            wanted = placeholders(CATALOGUE[code])
            given = set() if key is None else {"choices" if code == "field_choice" else "limit"}
            assert wanted == given, (pydantic_type, code)
        assert "field_invalid" in CATALOGUE and not placeholders(CATALOGUE["field_invalid"])

    def test_the_gave_up_suffix_fills_the_message_and_the_attempts(self):
        assert placeholders(GAVE_UP) == {"message", "attempts"}


# -- rendering in the reader's language -------------------------------------------------------------


class TestRender:
    def test_dutch_groups_numbers_the_dutch_way_and_names_the_unit(self, app):
        too_many = Msg("too_many", {"total": 51000, "unit": "label", "limit": 50000})
        with app.test_request_context(headers={"Accept-Language": "nl"}):
            text = too_many.text()
            rows = Msg("too_many", {"total": 1_000_001, "unit": "row", "limit": 1_000_000}).text()
        assert text == (
            "Deze taak heeft 51.000 labels; het maximum is 50.000. "
            "Filter nauwkeuriger en probeer het opnieuw."
        )
        assert "1.000.001 regels" in rows and "het maximum is 1.000.000" in rows
        with app.test_request_context():
            assert too_many.text().startswith("This job has 51,000 labels; the limit is 50,000.")

    def test_the_api_text_stays_english_in_a_dutch_request(self, app):
        with app.test_request_context(headers={"Accept-Language": "nl"}):
            msg = Msg("lot_deleted", {"id": 1234})
            assert msg.text().startswith("Oppotpartij #1.234 is verwijderd")
            assert msg.english() == (
                "Potting lot #1,234 was deleted after this job was started; print the labels again."
            )
            assert msg.as_json() == {"code": "lot_deleted", "params": {"id": 1234}}

    def test_the_gave_up_suffix_wraps_the_translated_message(self, app):
        failed = Msg("merge_failed", {"reason": "disk full", "attempts": 3})
        with app.test_request_context(headers={"Accept-Language": "nl"}):
            assert failed.text() == (
                "Het samenvoegen van de delen is mislukt: disk full (opgegeven na 3 pogingen)"
            )
            assert (
                failed.english() == "Merging the parts failed: disk full (gave up after 3 attempts)"
            )
            assert Msg("worker_stopped", {"attempts": 1200}).text() == (
                "De verwerker van deze taak is gestopt. (opgegeven na 1.200 pogingen)"
            )

    @pytest.mark.parametrize("lang", TRANSLATED)
    def test_the_gave_up_suffix_is_translated_in_every_language(self, app, lang):
        with app.test_request_context(headers={"Accept-Language": lang}):
            message = Msg("worker_silent").text()
            text = Msg("worker_silent", {"attempts": 3}).text()
            suffix = gettext(GAVE_UP, message="", attempts="3")
        assert message in text and text != message and text != Msg("worker_silent").english()
        assert text.replace(message, "") == suffix

    def test_lists_are_joined_and_steps_translated(self, app):
        with app.test_request_context(headers={"Accept-Language": "nl"}):
            assert (
                Msg("unknown_lots", {"ids": [3, 5, 8]}).text()
                == "Onbekende oppotpartijen: 3, 5, 8."
            )
            assert Msg("merging_parts", {"parts": 12}).text() == "12 delen samenvoegen"
            assert Msg("drawing_labels").text() == "Labels tekenen"
            assert Msg("field_range", {"low": 1, "high": 1000}).text() == (
                "Vul een getal van 1 tot en met 1.000 in."
            )

    def test_a_field_label_is_translated(self, app):
        with app.test_request_context(headers={"Accept-Language": "nl"}):
            assert [gettext(label) for label in FIELD_LABELS.values()] == [
                "Indeling",
                "Beginnen bij label",
                "Exemplaren",
                "Verschuiving → mm",
                "Verschuiving ↓ mm",
            ]

    def test_an_unknown_stored_code_is_shown_as_it_is_and_cannot_be_raised(self, app):
        with app.test_request_context(headers={"Accept-Language": "nl"}):
            assert (
                render("printer_on_fire", {"x": 1}) == "printer_on_fire"
            )  # an old row: never lost
            assert render(None) == ""
        with pytest.raises(KeyError):
            Msg("printer_on_fire")

    @pytest.mark.parametrize("lang", [*DEFAULTS["LANGUAGES"], "sv", "de_CH", "hi"])
    def test_counts_are_grouped_as_babel_groups_them(self, app, lang):
        values = [0, 7, -7, 999, 1000, -1234, 50_000, 1_000_001, -12_345_678, 10**12, 2.5, 1234.5]
        with app.test_request_context(), force_locale(lang):
            assert [number(value) for value in values] == [
                flask_babel.format_number(value) for value in values
            ]
            assert number(None) == "0"

    def test_a_request_finds_its_catalogue_once_and_follows_a_forced_locale(self, app, monkeypatch):
        lookups: list[str] = []
        find = flask_babel.Domain.get_translations

        def counted(domain: flask_babel.Domain) -> Any:
            lookups.append(str(flask_babel.get_locale()))
            return find(domain)

        monkeypatch.setattr(flask_babel.Domain, "get_translations", counted)
        with app.test_request_context(headers={"Accept-Language": "nl"}):
            assert [gettext("Cancel"), gettext("Cancel"), gettext("Running")] == [
                "Annuleren",
                "Annuleren",
                "Bezig",
            ]
            with force_locale("es"):
                assert gettext("Cancel") == "Cancelar"
                assert Msg("drawing_labels").english() == "Drawing labels"
                assert gettext("Running") == "En curso"
            assert gettext("Cancel") == "Annuleren"
            assert render_template_string("{{ _('Cancel') }}") == "Annuleren"
            flask_babel.refresh()
            assert gettext("Cancel") == "Annuleren"
        assert lookups == ["nl", "es", "en", "nl"]  # the outer catalogues come back as they were

    def test_english_stays_english(self, app):
        with app.test_request_context():
            assert Msg("drawing_labels").text() == "Drawing labels"
        with app.app_context(), force_locale("nl"):
            assert Msg("drawing_labels").text() == "Labels tekenen"


# -- what a Dutch user sees ------------------------------------------------------------------------

KIND = "potting_lot_labels"


def job_in(state: str, error: Msg | None = None) -> str:
    """A label job of the staff user brought to `state` through the engine's own lease."""
    from webapp import jobs
    from webapp.jobs import lease as leases
    from webapp.jobs import reaper

    owner = db.session.scalars(sa.select(User).where(User.email == "staff@example.com")).one()
    job, _created = jobs.submit(owner, KIND, {"lot_ids": [1, 2, 3]})
    if state == "queued":
        return job.id
    if state == "cancelled":
        jobs.cancel(job)
        return job.id
    lease = leases.claim(job.id)
    assert lease is not None
    if state == "running":
        lease.progress(1, "drawing_labels", force=True)
    elif state == "failed":
        lease.fail(error or Msg("lot_deleted", {"id": 2}))
    elif state in ("done", "expired"):
        tmp = lease.temp_path()
        tmp.write_bytes(b"%PDF-1.4\n% three labels\n")
        lease.finish(tmp, "application/pdf")
        if state == "expired":
            artifact_id = db.session.scalar(sa.select(Job.artifact_id).where(Job.id == job.id))
            db.session.execute(
                sa.update(Artifact).where(Artifact.id == artifact_id).values(expires_at=utcnow())
            )
            db.session.commit()
            reaper.expire()
    db.session.expire_all()
    assert db.session.get(Job, job.id).status == state  # type: ignore[union-attr]
    return job.id


def set_locale(email: str, locale: str | None) -> None:
    db.session.execute(sa.update(User).where(User.email == email).values(locale=locale))
    db.session.commit()


@pytest.fixture
def site(app: Flask) -> Flask:
    from webapp.nursery.demo import seed_lots

    with app.app_context():
        add_user()
        seed_lots(12)
    return app


@pytest.fixture
def browser(client: FlaskClient, auth: AuthActions, site: Flask) -> FlaskClient:
    assert auth.login().status_code == 302
    return client


def dutch(site: Flask) -> None:
    with site.app_context():
        set_locale("staff@example.com", "nl")


def lang_of(page: Page) -> str:
    return page.find("html")[0]["attrs"]["lang"]


def alerts(browser: FlaskClient, response: Any) -> list[str]:
    page = page_of(browser.get(response.headers["Location"]))
    return [page.text(f) for f in page.find(role="alert")]


class TestLocaleChoice:
    """The user's choice, else the browser's Accept-Language, else English."""

    def test_english_is_the_default(self, browser):
        page = page_of(browser.get("/nursery/potting-lots"))
        assert lang_of(page) == "en"
        assert "Print all 12 lots (12 labels)" in [page.text(b) for b in page.find("button")]

    def test_a_dutch_user_sees_the_table_in_dutch(self, site, browser):
        dutch(site)
        page = page_of(browser.get("/nursery/potting-lots"))
        assert lang_of(page) == "nl"
        texts = [page.text(b) for b in page.find("button")]
        assert "Alle 12 partijen afdrukken (12 labels)" in texts
        assert page.text(page.find("h1")[0]) == "Oppotpartijen"
        assert "Mijn taken" in [page.text(a) for a in page.find("a")]
        assert "12 oppotpartijen" in page.text(page.find("p", class_="row-count")[0])

    @pytest.mark.parametrize(
        ("state", "badge"),
        [
            ("queued", "In de wachtrij"),
            ("running", "Bezig"),
            ("done", "Klaar"),
            ("failed", "Mislukt"),
            ("cancelled", "Geannuleerd"),
            ("expired", "Verlopen"),
        ],
    )
    def test_a_dutch_user_sees_the_job_page_in_dutch_with_the_raw_status(
        self, site, browser, state, badge
    ):
        dutch(site)
        with site.app_context():
            job_id = job_in(state)
        page = page_of(browser.get(f"/jobs/{job_id}"))
        root = page.find(data_job_status=True)[0]
        assert root["attrs"]["data-job-status"] == state  # never translated
        assert page.text(page.find("span", class_=f"badge badge-{state}")[0]) == badge

    def test_a_running_job_shows_its_step_and_counts_in_dutch(self, site, browser):
        dutch(site)
        with site.app_context():
            job_id = job_in("running")
        page = page_of(browser.get(f"/jobs/{job_id}"))
        assert page.text(page.find("span", class_="step")[0]) == "Labels tekenen"
        assert page.text(page.find("span", class_="count")[0]) == "1 van 3 labels"

    def test_a_dutch_user_gets_a_dutch_download_link_and_tab_title(self, site, browser):
        dutch(site)
        with site.app_context():
            job_id = job_in("done")
        page = page_of(browser.get(f"/jobs/{job_id}"))
        link = [a for a in page.find("a") if a["attrs"].get("href") == f"/jobs/{job_id}/download"][
            0
        ]
        assert page.text(link).endswith("downloaden")
        assert page.find(data_job_status="done")[0]["attrs"]["data-title"].startswith("✓ Klaar · ")

    def test_an_engine_error_stored_as_a_code_is_shown_in_dutch(self, site, browser):
        dutch(site)
        with site.app_context():
            job_id = job_in("failed", Msg("lot_deleted", {"id": 2}))
            job = db.session.get(Job, job_id)
            assert (job.error_code, job.error_params) == ("lot_deleted", {"id": 2})  # no sentence
        page = page_of(browser.get(f"/jobs/{job_id}"))
        root = page.find(data_job_status="failed")[0]
        assert page.text(page.find("p", class_="error-text")[0]) == (
            "Oppotpartij #2 is verwijderd nadat deze taak was gestart; druk de labels opnieuw af."
        )
        assert "Het bestand kon niet worden gemaakt." in page.text(root)

    def test_an_error_the_engine_gave_up_on_is_shown_in_dutch_with_its_attempts(
        self, site, browser
    ):
        dutch(site)
        with site.app_context():
            job_id = job_in("failed", Msg("unexpected", {"reason": "OSError: boom", "attempts": 3}))
        page = page_of(browser.get(f"/jobs/{job_id}"))
        assert page.text(page.find("p", class_="error-text")[0]) == (
            "Onverwachte fout: OSError: boom (opgegeven na 3 pogingen)"
        )

    def test_the_same_error_is_english_for_an_english_reader(self, site, browser):
        with site.app_context():
            job_id = job_in("failed", Msg("lot_deleted", {"id": 2}))
        page = page_of(browser.get(f"/jobs/{job_id}"))
        assert page.text(page.find("p", class_="error-text")[0]).startswith(
            "Potting lot #2 was deleted after this job was started"
        )

    def test_accept_language_decides_for_a_user_without_a_choice(self, browser):
        page = page_of(
            browser.get("/jobs/", headers={"Accept-Language": "nl-NL,nl;q=0.9,en;q=0.5"})
        )
        assert lang_of(page) == "nl"
        assert page.text(page.find("h1")[0]) == "Mijn taken"

    def test_the_users_choice_beats_accept_language(self, site, browser):
        with site.app_context():
            set_locale("staff@example.com", "en")
        page = page_of(browser.get("/jobs/", headers={"Accept-Language": "nl"}))
        assert page.text(page.find("h1")[0]) == "My jobs"

    def test_the_login_page_follows_accept_language(self, client):
        page = page_of(client.get("/login", headers={"Accept-Language": "nl"}))
        assert page.text(page.find("h1")[0]) == "Inloggen"
        assert page.find("input", name="email") and page.find("input", name="password")

    def test_the_language_switch_stores_the_choice_and_goes_back(self, site, browser):
        response = browser.post("/settings/language", data={"locale": "nl", "next": "/jobs/"})
        assert response.status_code == 302 and response.headers["Location"] == "/jobs/"
        with site.app_context():
            user = db.session.scalars(
                sa.select(User).where(User.email == "staff@example.com")
            ).one()
            assert user.locale == "nl"
        page = page_of(browser.get("/jobs/"))
        assert page.find("button", name="locale", value="nl")[0]["attrs"]["aria-pressed"] == "true"
        assert page.text(page.find("h1")[0]) == "Mijn taken"

    def test_an_unknown_language_is_not_stored(self, site, browser):
        browser.post("/settings/language", data={"locale": "xx", "next": "/jobs/"})
        with site.app_context():
            assert (
                db.session.scalar(sa.select(User.locale).where(User.email == "staff@example.com"))
                is None
            )

    def test_flash_messages_from_views_are_dutch(self, site, browser):
        dutch(site)
        response = browser.post(
            "/nursery/potting-lots/reprint", data={}, headers={"Referer": "/nursery/potting-lots"}
        )
        assert "Vink minstens één regel aan om te herdrukken." in alerts(browser, response)

    def test_a_bad_print_option_is_named_by_its_dutch_label(self, site, browser):
        dutch(site)
        response = browser.post(
            "/nursery/potting-lots/print",
            data={"copies": "veel"},
            headers={"Referer": "/nursery/potting-lots"},
        )
        assert "Exemplaren: Vul een getal in." in alerts(browser, response)

    def test_an_engine_refusal_is_flashed_in_dutch(self, site, browser):
        dutch(site)
        response = browser.post(
            "/nursery/potting-lots/print",
            data={"q": "geen zulke plant"},
            headers={"Referer": "/nursery/potting-lots"},
        )
        assert "Geen oppotpartijen gevonden met deze filters; pas ze aan of wis ze." in alerts(
            browser, response
        )

    def test_an_error_page_is_dutch(self, site, browser):
        dutch(site)
        response = browser.get("/no/such/page")
        assert response.status_code == 404
        page = Page(response.get_data(as_text=True))
        assert lang_of(page) == "nl"
        assert (
            "Op dit adres staat geen pagina. Controleer de link, of begin opnieuw vanuit het menu."
            in page.text(page.find("main")[0] if page.find("main") else page.find("body")[0])
        )
