"""No input makes a 5xx (issue 9, Input): property-based tests (Hypothesis) over the API's params
schemas (POST /api/v1/jobs with every kind's params, the work-order and listing endpoints) and
over every form route of the pages (POST with arbitrary field values, raw bytes included; CSRF
is off in the test config, as in the other view tests). Every answer under /api/ is JSON.

Bounded: a few dozen examples per property, so the file runs in well under a minute on two busy
cores; `database=None` keeps Hypothesis from writing an example database into the work tree.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_from_bytes

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from tests.conftest import add_user, app_config
from webapp import create_app, documents
from webapp.auth import create_token
from webapp.cli import init_db
from webapp.extensions import db
from webapp.models import Role

ROOT = Path(__file__).resolve().parents[2]
# FUZZ_EXAMPLES=500 for a longer hunt by hand; the suite's own run stays short.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- values -----------------------------------------------------------------------------------

TRICKY_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",  # a lone surrogate: valid JSON ("\\ud800"), not encodable as UTF-8
    "\udfff",
    "\u2028",
    "\ufffd",
    "x" * 10_000,
    "2026-02-30",
    "9999-12-31",
    "0001-01-01",
    "0000-00-00",
    "2026-W53",
    "2026-W99",
    "-1",
    "1e309",
    "NaN",
    "9" * 30,
    "1,5",
    "<script>",
]
TRICKY_INTS = [0, -1, 1, 2**31, 2**63, -(2**63) - 1, 10**30, -(10**30), 10**4000]
text = st.one_of(
    st.sampled_from(TRICKY_TEXT),
    st.text(
        alphabet=st.one_of(st.characters(), st.sampled_from(["\ud800", "\x00", "\n", "é"])),
        max_size=40,
    ),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(TRICKY_INTS),
    st.integers(-1000, 100_000),
    st.floats(allow_nan=True, allow_infinity=True),
    text,
)


def model_fields(model: type[BaseModel], seen: set[type] | None = None) -> set[str]:
    """Every field name of `model` and of the models nested in it."""
    seen = seen if seen is not None else set()
    if model in seen:
        return set()
    seen.add(model)
    names: set[str] = set()
    for name, info in model.model_fields.items():
        names.add(info.alias or name)
        for arg in _types(info.annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                names |= model_fields(arg, seen)
    return names


def _types(annotation: Any) -> list[Any]:
    found = [annotation]
    for arg in getattr(annotation, "__args__", ()) or ():
        found += _types(arg)
    return found


def json_values(keys: list[str]) -> st.SearchStrategy[Any]:
    """JSON of the shapes params have: objects keyed by the schema's own names (and others),
    lists, scalars of every type, nested a few levels."""
    key = st.one_of(st.sampled_from(keys), text) if keys else text
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(key, inner, max_size=4)
        ),
        max_leaves=8,
    )


def kind_params(kind: documents.DocumentKind) -> st.SearchStrategy[Any]:
    keys = sorted(model_fields(kind.Params))
    values = json_values(keys)
    objects = st.dictionaries(st.sampled_from(keys), values, max_size=len(keys) + 1)
    return st.one_of(objects, objects, values)  # mostly objects of its fields, sometimes not


# -- the app ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory, migrated_db) -> Iterator[Flask]:
    """One app for the whole file (its setup costs more than a property's examples): 20 potting
    lots, 10 lab protocols, a staff and an admin user and their API tokens."""
    from webapp.lab.demo import seed_lab
    from webapp.nursery.demo import seed_lots

    data = tmp_path_factory.mktemp("fuzz")
    shutil.copyfile(migrated_db, data / "pressroom.db")
    app = create_app(app_config(data, MAX_LABELS=2_000, MAX_EXPORT_ROWS=10_000))
    with app.app_context():
        init_db()
        staff = add_user()
        admin = add_user("admin@example.com", "pw-admin", Role.ADMIN)
        seed_lots(20)
        seed_lab(10)
        app.config["FUZZ_TOKENS"] = {"staff": create_token(staff), "admin": create_token(admin)}
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def bearer(app, who: str = "staff") -> dict[str, str]:
    return {"Authorization": f"Bearer {app.config['FUZZ_TOKENS'][who]}"}


def assert_api_answer(response) -> None:
    body = response.get_data(as_text=True)
    assert response.status_code < 500, body[:2000]
    assert response.is_json, (response.status_code, response.headers.get("Content-Type"))
    if response.status_code >= 400:
        error = response.get_json()["error"]
        assert error["code"] and error["message"]


def post_json(client, path: str, body: Any, headers: dict[str, str], method: str = "POST"):
    # ensure_ascii: a lone surrogate travels as "\\ud800", exactly as an attacker sends it.
    return client.open(
        path,
        method=method,
        data=json.dumps(body, allow_nan=True),
        content_type="application/json",
        headers=headers,
    )


# -- the API ----------------------------------------------------------------------------------


KINDS = documents.names()


@pytest.mark.parametrize("kind_name", KINDS)
def test_no_params_of_any_kind_make_a_5xx(site, kind_name):
    kind = documents.get(kind_name)
    assert kind is not None
    client = site.test_client()

    @FUZZ
    @given(params=kind_params(kind), who=st.sampled_from(["staff", "admin"]))
    def check(params: Any, who: str) -> None:
        response = post_json(
            client, "/api/v1/jobs", {"kind": kind_name, "params": params}, bearer(site, who)
        )
        assert_api_answer(response)

    check()


WORK_ORDER_KEYS = ["veterinarian_id", "protocol_ids", "notes", "items", "service", "quantity"]


def test_no_body_of_the_other_api_writes_makes_a_5xx(site):
    client = site.test_client()

    @FUZZ
    @given(
        body=json_values(WORK_ORDER_KEYS),
        path=st.sampled_from(
            [
                ("POST", "/api/v1/work-orders"),
                ("PATCH", "/api/v1/work-orders/1"),
                ("PATCH", "/api/v1/work-orders/99999999999999999999"),
                ("POST", "/api/v1/protocols/1/receive"),
                ("POST", "/api/v1/jobs"),
                ("POST", "/api/v1/jobs/x/cancel"),
                ("POST", "/api/v1/jobs/x/retry"),
            ]
        ),
    )
    def check(body: Any, path: tuple[str, str]) -> None:
        method, url = path
        assert_api_answer(post_json(client, url, body, bearer(site), method=method))

    check()


def query(pairs: list[tuple[str, bytes]]) -> str:
    return "&".join(f"{quote(k)}={quote_from_bytes(v)}" for k, v in pairs)


raw_values = st.one_of(
    st.binary(max_size=30),  # invalid UTF-8 included
    st.sampled_from([t.encode("utf-8", "surrogatepass") for t in TRICKY_TEXT]),
    st.integers(-(10**20), 10**20).map(lambda n: str(n).encode()),
)


def test_no_query_string_of_the_api_makes_a_5xx(site):
    client = site.test_client()
    keys = ["status", "kind", "limit", "owner", "page", "x"]

    @FUZZ
    @given(
        pairs=st.lists(st.tuples(st.sampled_from(keys), raw_values), max_size=5),
        path=st.sampled_from(
            ["/api/v1/jobs", "/api/v1/jobs/abc", "/api/v1/work-orders/1", "/api/v1/nothing"]
        ),
    )
    def check(pairs: list[tuple[str, bytes]], path: str) -> None:
        assert_api_answer(client.get(f"{path}?{query(pairs)}", headers=bearer(site)))

    check()


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,  # deep JSON: a RecursionError in the parser
        b'{"kind": "potting_lot_labels", "params": ' + b'{"a": ' * 5_000 + b"1" + b"}" * 5_001,
        b"not json at all",
        b"\xff\xfe\x00{",  # not UTF-8
        b'{"kind": "potting_lot_labels", "params": {"lot_ids": [' + b"9" * 5_000 + b"]}}",
        b'{"kind": "potting_lot_labels", "params": {"lot_ids": [1e999]}}',
        b'{"kind": "potting_lot_labels", "params": {"lot_ids": [NaN]}}',
        b'{"kind": "\\ud800", "params": {}}',
        b'{"kind": "potting_lot_labels", "params": {"filter": {"q": "\\ud800\\u0000"}}}',
        b"[]",
        b'"string"',
        b"null",
        b"",
    ],
)
def test_malformed_bodies_are_4xx_json(site, body):
    response = site.test_client().post(
        "/api/v1/jobs", data=body, content_type="application/json", headers=bearer(site)
    )
    assert_api_answer(response)
    assert 400 <= response.status_code < 500


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/v1/no-such-thing", 404),
        ("DELETE", "/api/v1/jobs", 405),
        ("GET", "/api/v1/jobs?" + "x" * 5_000, 414),
        ("GET", "/api/v1/" + "x" * 5_000, 414),
    ],
)
def test_werkzeug_and_our_own_refusals_are_json_under_the_api(site, method, path, status):
    response = site.test_client().open(path, method=method, headers=bearer(site))
    assert response.status_code == status
    assert_api_answer(response)


def test_a_body_over_the_limit_is_413_json(site):
    body = b'{"x": "' + b"a" * (site.config["MAX_CONTENT_LENGTH"] + 10) + b'"}'
    response = site.test_client().post(
        "/api/v1/jobs", data=body, content_type="application/json", headers=bearer(site)
    )
    assert response.status_code == 413
    assert_api_answer(response)


def test_a_long_url_of_a_page_is_a_414_page(site):
    response = site.test_client().get("/jobs/?" + "x" * 5_000)
    assert response.status_code == 414
    assert "text/html" in response.headers["Content-Type"]


# -- the forms --------------------------------------------------------------------------------

# The auth pages (login, logout, account, language) are another part's (and throttled there).
SKIP_ENDPOINT_PREFIXES = ("api.", "auth.", "static", "health.", "metrics")


def form_routes(app) -> list[tuple[str, str]]:
    """(method, url) of every page route that takes a POST, URL values filled with small ids."""
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(SKIP_ENDPOINT_PREFIXES) or "POST" not in (rule.methods or ()):
            continue
        values = {}
        for name in rule.arguments:
            converter = rule._converters[name]  # noqa: SLF001 (the rule's own converters)
            values[name] = (
                1 if type(converter).__name__ == "IntegerConverter" else _string_value(converter)
            )
        with app.test_request_context():
            from flask import url_for

            routes.append(("POST", url_for(rule.endpoint, **values)))
    return sorted(set(routes))


def _string_value(converter: Any) -> str:
    items = getattr(converter, "items", None)  # any(…): its first choice
    return sorted(items)[0] if items else "x"


def field_names() -> list[str]:
    """The names the views read from forms and query strings (found in their source), plus
    the field lists they read through constants."""
    names: set[str] = set()
    pattern = re.compile(
        r"""(?:get|getlist|__getitem__)\(\s*f?["']([a-z_]+)["']|form\[["']([a-z_]+)["']\]"""
    )
    for folder in ("webapp/views", "webapp/nursery", "webapp/lab"):
        for path in (ROOT / folder).glob("*.py"):
            for match in pattern.finditer(path.read_text()):
                names.add(match.group(1) or match.group(2))
    import importlib

    for module, attr in (
        ("webapp.nursery.filters", "FILTER_KEYS"),
        ("webapp.views.nursery", "PRINT_OPTIONS"),
        ("webapp.views.lab", "SAMPLE_FIELDS"),
        ("webapp.nursery.profiles", "FORM_FIELDS"),
        ("webapp.lab.records", "FILTER_KEYS"),
        ("webapp.views.lab_tables", "FILTER_KEYS"),
    ):
        try:
            names |= set(getattr(importlib.import_module(module), attr, ()))
        except ImportError:
            pass
    return sorted(names)


def form_body(pairs: list[tuple[str, bytes]]) -> bytes:
    return query(pairs).encode()


@pytest.mark.parametrize("who", ["staff@example.com", "admin@example.com"])
def test_no_form_values_make_a_5xx(site, who):
    client = site.test_client()
    password = "pw-staff" if who.startswith("staff") else "pw-admin"
    assert client.post("/login", data={"email": who, "password": password}).status_code in (
        302,
        303,
    )
    routes = form_routes(site)
    assert len(routes) >= 10, routes
    names = field_names()
    assert {"copies", "lot_id", "notes", "kind"} <= set(names), names

    @settings(FUZZ, max_examples=EXAMPLES * 3)
    @given(
        route=st.sampled_from(routes),
        pairs=st.lists(st.tuples(st.sampled_from(names), raw_values), max_size=8),
        htmx=st.booleans(),
    )
    def check(route: tuple[str, str], pairs: list[tuple[str, bytes]], htmx: bool) -> None:
        method, url = route
        headers = {"HX-Request": "true"} if htmx else {}
        response = client.open(
            url,
            method=method,
            data=form_body(pairs),
            content_type="application/x-www-form-urlencoded",
            headers=headers,
        )
        assert response.status_code < 500, (url, pairs, response.get_data(as_text=True)[:2000])

    check()


def test_no_query_string_of_the_pages_makes_a_5xx(site):
    client = site.test_client()
    client.post("/login", data={"email": "admin@example.com", "password": "pw-admin"})
    pages = sorted(
        {
            str(rule)
            for rule in site.url_map.iter_rules()
            if "GET" in (rule.methods or ())
            and not rule.arguments
            and not rule.endpoint.startswith(SKIP_ENDPOINT_PREFIXES)
        }
    )
    names = field_names()

    @FUZZ
    @given(
        page=st.sampled_from(pages),
        pairs=st.lists(st.tuples(st.sampled_from(names), raw_values), max_size=6),
    )
    def check(page: str, pairs: list[tuple[str, bytes]]) -> None:
        response = client.get(f"{page}?{query(pairs)}")
        assert response.status_code < 500, (page, pairs, response.get_data(as_text=True)[:2000])

    check()


def test_a_nul_in_any_text_is_refused_naming_its_field(site):
    """PostgreSQL refuses NUL in text (a 500 there): refused for every API field and form field."""
    client = site.test_client()
    for method, path, body, field in [
        ("PATCH", "/api/v1/work-orders/1", {"notes": "a\x00b"}, "notes"),
        (
            "POST",
            "/api/v1/jobs",
            {"kind": "x", "params": {"filter": {"q": "\x00"}}},
            "filter.q",
        ),
        ("POST", "/api/v1/jobs", {"kind": "x\x00", "params": {}}, "kind"),
    ]:
        response = post_json(client, path, body, bearer(site), method=method)
        assert response.status_code == 422, response.get_data(as_text=True)
        assert field in response.get_json()["error"]["fields"]
    client.post("/login", data={"email": "staff@example.com", "password": "pw-staff"})
    response = client.post("/lab/work-orders/1", data={"notes": "a\x00b"})
    assert response.status_code == 422
    assert "not valid" in response.get_data(as_text=True)
