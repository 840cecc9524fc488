"""Headers every answer carries (issue 9): no sniffing, no framing, a referrer policy, a strict
Content-Security-Policy that the templates keep to (no inline script, handler or style); and a
login for an unknown address costs a password check like a wrong password does."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import add_user

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted((ROOT / "templates").rglob("*.html"))
STRICT_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# What the CSP blocks, or what htmx could only do with eval, as it may be written in a template.
INLINE = {
    "an inline <script>": re.compile(r"<script(?![^>]*\ssrc=)[^>]*>", re.I),
    "a <style> element": re.compile(r"<style[\s>]", re.I),
    "an on*= handler": re.compile(r"\son[a-z]+\s*=", re.I),
    "a style= attribute": re.compile(r"\sstyle\s*=", re.I),
    "a javascript: URL": re.compile(r"javascript:", re.I),
    "hx-on (needs eval)": re.compile(r"\s(data-)?hx-on", re.I),
    "js: in hx-vals/hx-vars (needs eval)": re.compile(r"hx-va(ls|rs)\s*=\s*['\"]\s*js:", re.I),
    "an hx-trigger filter (needs eval)": re.compile(r"hx-trigger\s*=\s*\"[^\"]*\[", re.I),
}


@pytest.mark.parametrize("path", ["/login", "/api/v1/jobs", "/healthz", "/no-such-page"])
def test_every_answer_forbids_sniffing_and_framing(app, client, path):
    answer = client.get(path)
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Content-Security-Policy"] == STRICT_POLICY
    assert answer.headers["Referrer-Policy"] == "same-origin"


def test_a_file_download_carries_the_policy_too(app, client):
    answer = client.get("/static/app.js")
    assert answer.status_code == 200
    assert answer.headers["Content-Security-Policy"] == STRICT_POLICY
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_htmx_is_configured_for_the_policy(app, client):
    page = client.get("/login").get_data(as_text=True)
    meta = re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", page)
    assert meta, "base.html configures htmx"
    assert json.loads(meta.group(1)) == {
        "allowEval": False,
        "allowScriptTags": False,
        "includeIndicatorStyles": False,
    }
    # Every script of the page is a file of ours; htmx's indicator styles are in app.css.
    assert re.findall(r"<script[^>]*>", page) and all(
        ' src="/static/' in tag for tag in re.findall(r"<script[^>]*>", page)
    )
    assert ".htmx-indicator" in (ROOT / "static" / "app.css").read_text()


def test_the_checks_below_see_what_they_look_for():
    samples = {
        "an inline <script>": "<script>alert(1)</script>",
        "a <style> element": "<style>p{}</style>",
        "an on*= handler": '<select onchange="this.form.submit()">',
        "a style= attribute": '<div style="width: 5%">',
        "a javascript: URL": '<a href="javascript:void(0)">',
        "hx-on (needs eval)": '<button hx-on:click="go()">',
        "js: in hx-vals/hx-vars (needs eval)": "<div hx-vals='js:{a: 1}'>",
        "an hx-trigger filter (needs eval)": '<div hx-trigger="every 5s [visible()]">',
    }
    assert samples.keys() == INLINE.keys()
    for what, sample in samples.items():
        assert INLINE[what].search(sample), what
    fine = (
        '<script src="/static/app.js" defer></script><div data-poll-visible hx-trigger="every 1s">'
    )
    assert not any(pattern.search(fine) for pattern in INLINE.values())


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_template_has_inline_script_or_style(template):
    text = template.read_text(encoding="utf-8")
    found = [
        f"{what} on line {text.count(chr(10), 0, match.start()) + 1}: {match.group(0)!r}"
        for what, pattern in INLINE.items()
        for match in pattern.finditer(text)
    ]
    assert found == [], found


def test_a_page_with_its_own_referrer_policy_keeps_it(app, client):
    from webapp.db import write_txn
    from webapp.lab.demo import seed_lab
    from webapp.models import Protocol

    with app.app_context():
        seed_lab(1)
        with write_txn() as session:
            external = session.get(Protocol, 1).external_id
    answer = client.get(f"/protocols/public/{external}/")
    assert answer.status_code == 200 and answer.headers["Referrer-Policy"] == "no-referrer"


def test_an_unknown_address_is_checked_like_a_wrong_password(app, client, monkeypatch):
    from webapp.views import auth

    with app.app_context():
        add_user("staff@example.com", "pw-staff")
    checked: list[str] = []
    real = auth.check_password_hash
    monkeypatch.setattr(auth, "check_password_hash", lambda h, p: checked.append(p) or real(h, p))
    answer = client.post("/login", data={"email": "nobody@example.com", "password": "guess"})
    assert answer.status_code == 200 and b"Wrong email or password" in answer.data
    assert checked == ["guess"]  # the same hashing work as for an existing account


SCRIPT_EVAL = re.compile(
    r"\beval\(|new Function\(|set(Timeout|Interval)\(\s*['\"`]|\.innerHTML\s*=|cssText|"
    r"setAttribute\(\s*['\"]style|style=|javascript:",
)


@pytest.mark.parametrize("script", sorted((ROOT / "static").glob("*.js")), ids=lambda p: p.name)
def test_our_scripts_need_no_eval_and_write_no_inline_style(script):
    # The CSP forbids eval (no 'unsafe-eval') and style= attributes: a script of ours sets
    # element.style properties (CSSOM) or classes, and builds elements, never markup strings.
    text = script.read_text(encoding="utf-8")
    assert [m.group(0) for m in SCRIPT_EVAL.finditer(text)] == []
