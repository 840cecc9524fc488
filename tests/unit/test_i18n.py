"""English and Dutch: a complete Dutch catalogue, the user's choice, Accept-Language, placeholders
that survive translation, and the engine's English messages shown in Dutch."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import AuthActions, add_user
from tests.unit.test_ui import Page, job_in, page_of
from webapp import ROOT
from webapp.extensions import db
from webapp.i18n import catalogue_messages, translate_message
from webapp.models import User

TRANSLATIONS = ROOT / "webapp" / "translations"
PO = TRANSLATIONS / "nl" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def read_catalogue(path: Path) -> Catalog:
    with path.open("rb") as f:
        return read_po(f, locale="nl" if path == PO else None)


@pytest.fixture(scope="module", autouse=True)
def compiled_catalogue() -> None:
    """`make install` compiles the .mo (git-ignored); do the same here when it is missing or stale."""
    if MO.exists() and MO.stat().st_mtime >= PO.stat().st_mtime:
        return
    tmp = MO.with_suffix(".mo.tmp")
    with tmp.open("wb") as f:
        write_mo(f, read_catalogue(PO))
    tmp.replace(MO)


def forms(message) -> list[str]:  # type: ignore[no-untyped-def]
    return list(message.string) if isinstance(message.string, tuple | list) else [message.string]


def ids(message) -> list[str]:  # type: ignore[no-untyped-def]
    return list(message.id) if isinstance(message.id, tuple | list) else [message.id]


class TestCatalogue:
    """webapp/translations/nl: every message translated, none fuzzy, placeholders intact."""

    def test_every_dutch_entry_is_translated_and_none_is_fuzzy(self):
        catalogue = read_catalogue(PO)
        untranslated = [m.id for m in catalogue if m.id and not all(s.strip() for s in forms(m))]
        fuzzy = [m.id for m in catalogue if m.id and m.fuzzy]
        assert not untranslated, untranslated
        assert not fuzzy, fuzzy
        assert not catalogue.fuzzy  # the header is not fuzzy either (pybabel compile skips it)
        assert len(catalogue) > 150

    def test_every_plural_entry_has_both_dutch_forms(self):
        for message in read_catalogue(PO):
            if message.id and message.pluralizable:
                assert len(forms(message)) == 2 and all(forms(message)), message.id

    def test_the_catalogue_holds_every_message_in_the_sources(self):
        """Run the extraction (babel.cfg) and compare: a new UI string needs a translation."""
        with (ROOT / "babel.cfg").open() as f:
            method_map, options_map = parse_mapping_cfg(f)
        in_sources = {ids_[0] if isinstance(ids_, tuple) else ids_
                      for _file, _line, ids_, _comments, _context in
                      extract_from_dir(str(ROOT), method_map, options_map)}
        in_catalogue = {ids(m)[0] for m in read_catalogue(PO) if m.id}
        assert len(in_sources) > 150  # the extraction did find the templates and views
        assert not in_sources - in_catalogue, sorted(in_sources - in_catalogue)

    def test_the_template_and_the_dutch_catalogue_have_the_same_messages(self):
        pot = {ids(m)[0] for m in read_catalogue(TRANSLATIONS / "messages.pot") if m.id}
        po = {ids(m)[0] for m in read_catalogue(PO) if m.id}
        assert pot == po

    def test_placeholders_survive_translation(self):
        """Same placeholder names in English and Dutch, and every form formats without error."""
        for message in read_catalogue(PO):
            if not message.id:
                continue
            wanted = {name for text in ids(message) for name in PLACEHOLDER.findall(text)}
            for text in forms(message):
                assert set(PLACEHOLDER.findall(text)) == wanted, (message.id, text)
                if wanted or message.python_format:
                    assert text % dict.fromkeys(wanted, 7)  # raises on a broken placeholder

    def test_every_engine_message_the_ui_translates_is_in_the_catalogue(self):
        catalogue = read_catalogue(PO)
        for message in catalogue_messages():
            entry = catalogue.get(message)
            assert entry is not None and entry.string, message


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


class TestLocaleChoice:
    """The user's choice, else the browser's Accept-Language, else English."""

    def test_english_is_the_default(self, browser):
        page = page_of(browser.get("/nursery/potting-lots"))
        assert lang_of(page) == "en"
        assert "Print labels (12)" in [page.text(b) for b in page.find("button")]

    def test_a_dutch_user_sees_the_table_in_dutch(self, site, browser):
        dutch(site)
        page = page_of(browser.get("/nursery/potting-lots"))
        assert lang_of(page) == "nl"
        texts = [page.text(b) for b in page.find("button")]
        assert "Labels afdrukken (12)" in texts
        assert page.text(page.find("h1")[0]) == "Oppotpartijen"
        assert "Mijn taken" in [page.text(a) for a in page.find("a")]
        assert "12 oppotpartijen" in page.text(page.find("p", class_="row-count")[0])

    @pytest.mark.parametrize(("state", "badge"), [
        ("queued", "In de wachtrij"), ("running", "Bezig"), ("done", "Klaar"),
        ("failed", "Mislukt"), ("cancelled", "Geannuleerd"), ("expired", "Verlopen")])
    def test_a_dutch_user_sees_the_job_page_in_dutch_with_the_raw_status(self, site, browser, state, badge):
        dutch(site)
        with site.app_context():
            job_id = job_in(state)
        page = page_of(browser.get(f"/jobs/{job_id}"))
        root = page.find(data_job_status=True)[0]
        assert root["attrs"]["data-job-status"] == state  # never translated
        assert page.text(page.find("span", class_=f"badge badge-{state}")[0]) == badge

    def test_a_dutch_user_gets_a_dutch_download_link_and_tab_title(self, site, browser):
        dutch(site)
        with site.app_context():
            job_id = job_in("done")
        page = page_of(browser.get(f"/jobs/{job_id}"))
        link = [a for a in page.find("a") if a["attrs"].get("href") == f"/jobs/{job_id}/download"][0]
        assert page.text(link).endswith("downloaden")
        assert page.find(data_job_status="done")[0]["attrs"]["data-title"].startswith("✓ Klaar · ")

    def test_the_engines_english_error_is_shown_in_dutch(self, site, browser):
        dutch(site)
        with site.app_context():
            job_id = job_in("failed")
        page = page_of(browser.get(f"/jobs/{job_id}"))
        text = page.text(page.find(data_job_status="failed")[0])
        assert "Oppotpartij #2 is verwijderd nadat deze taak was gestart" in text

    def test_accept_language_decides_for_a_user_without_a_choice(self, browser):
        page = page_of(browser.get("/jobs/", headers={"Accept-Language": "nl-NL,nl;q=0.9,en;q=0.5"}))
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
            user = db.session.scalars(sa.select(User).where(User.email == "staff@example.com")).one()
            assert user.locale == "nl"
        page = page_of(browser.get("/jobs/"))
        assert page.find("button", name="locale", value="nl")[0]["attrs"]["aria-pressed"] == "true"
        assert page.text(page.find("h1")[0]) == "Mijn taken"

    def test_an_unknown_language_is_not_stored(self, site, browser):
        browser.post("/settings/language", data={"locale": "xx", "next": "/jobs/"})
        with site.app_context():
            assert db.session.scalar(sa.select(User.locale).where(User.email == "staff@example.com")) is None

    def test_flash_messages_from_views_are_dutch(self, site, browser):
        dutch(site)
        response = browser.post("/nursery/potting-lots/reprint", data={},
                                headers={"Referer": "/nursery/potting-lots"})
        page = page_of(browser.get(response.headers["Location"]))
        assert "Vink minstens één regel aan om te herdrukken." in [page.text(f) for f in page.find(role="alert")]

    def test_a_bad_print_option_is_named_by_its_dutch_label(self, site, browser):
        dutch(site)
        response = browser.post("/nursery/potting-lots/print", data={"copies": "veel"},
                                headers={"Referer": "/nursery/potting-lots"})
        page = page_of(browser.get(response.headers["Location"]))
        assert "Exemplaren moet een getal zijn." in [page.text(f) for f in page.find(role="alert")]

    def test_an_engine_refusal_is_flashed_in_dutch(self, site, browser):
        dutch(site)
        response = browser.post("/nursery/potting-lots/print", data={"q": "geen zulke plant"},
                                headers={"Referer": "/nursery/potting-lots"})
        page = page_of(browser.get(response.headers["Location"]))
        assert ("Geen oppotpartijen gevonden met deze filters; pas ze aan of wis ze."
                in [page.text(f) for f in page.find(role="alert")])


class TestTranslateMessage:
    """translate_message: the engine's English phrasing → the catalogue, values kept."""

    def test_a_known_message_keeps_its_values(self, site):
        with site.test_request_context(headers={"Accept-Language": "nl"}):
            assert translate_message("This batch has 60,000 labels; the limit is 50,000.") == \
                "Deze opdracht heeft 60,000 labels; het maximum is 50,000."
            assert translate_message("Merging 4 parts") == "4 delen samenvoegen"

    def test_a_given_up_suffix_is_translated_around_the_message(self, site):
        with site.test_request_context(headers={"Accept-Language": "nl"}):
            text = translate_message("Merging the parts failed: disk full (gave up after 3 attempts)")
        assert text == "Het samenvoegen van de delen is mislukt: disk full (gestopt na 3 pogingen)"

    def test_field_names_are_shown_as_the_form_labels_them(self, site):
        with site.test_request_context(headers={"Accept-Language": "nl"}):
            assert translate_message("'copies' must be a whole number from 1 to 100.") == \
                "Exemplaren moet een geheel getal van 1 tot en met 100 zijn."

    def test_an_unknown_message_is_shown_as_it_is(self, site):
        with site.test_request_context(headers={"Accept-Language": "nl"}):
            assert translate_message("The printer caught fire.") == "The printer caught fire."
            assert translate_message(None) == ""

    def test_english_stays_english(self, site):
        with site.test_request_context():
            assert translate_message("Drawing labels") == "Drawing labels"
