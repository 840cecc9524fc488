"""CPU cost of the status paths in-process (Flask test client, no HTTP): µs per request.

    .venv/bin/python bench/status_cost.py [--requests 1000] [--profile "fragment 304"]

One app on a temporary SQLite database with the stub broker, a logged-in staff user and one
queued job. The paths: a static file's 304 (the floor `status_wrk.py` rates against), the job
page's watch-token poll rendered (200) and unchanged (304), the same fragment the long way (no
watch token: the session decoded and re-signed, the user and the job through the ORM), and the
owner's `GET /api/v1/jobs/<id>`. Then an API submit (`POST /api/v1/jobs`, each of other lots:
a new job every time; the stub broker takes its message, so Redis's ~0.5 ms is not in it).
`--profile NAME` prints a cProfile of that path ("submit" too).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import re
import tempfile
import time

from common import STAFF_EMAIL, STAFF_PASSWORD, machine, seed_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--profile", default=None)
    args = parser.parse_args()

    from webapp import create_app, jobs
    from webapp.auth import create_token
    from webapp.extensions import db

    data = tempfile.mkdtemp(prefix="prs-")
    config = {"PRESSROOM_DATA": data, "SECRET_KEY": "bench", "BROKER": "stub", "METRICS_DIR": None}
    app = create_app(config)
    with app.app_context():
        user = seed_database(50)
        token = create_token(user)
        job_id = jobs.submit(user, "potting_lot_labels", {"lot_ids": list(range(1, 41))})[0].id
        db.session.remove()

    browser = app.test_client()
    form = browser.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form)
    login = {"email": STAFF_EMAIL, "password": STAFF_PASSWORD}
    if csrf:
        login["csrf_token"] = csrf.group(1)
    assert browser.post("/login", data=login).status_code in (302, 303), "login failed"
    page = browser.get(f"/jobs/{job_id}").get_data(as_text=True)
    found = re.search(r'hx-get="([^"]+/status\?w=[^"]+)"', page)
    assert found, "the job page gives its polls a watch token"
    poll = found.group(1).replace("&amp;", "&")
    hx = {"HX-Request": "true"}
    etag = browser.get(poll, headers=hx).headers["ETag"]
    static_etag = browser.get("/static/app.css").headers["ETag"]
    api = app.test_client()
    bearer = {"Authorization": f"Bearer {token}"}
    cases = {
        "static 304": (browser, "/static/app.css", {"If-None-Match": static_etag}),
        "fragment 200": (browser, poll, hx),
        "fragment 304": (browser, poll, {**hx, "If-None-Match": etag}),
        "fragment 200, the long way": (browser, f"/jobs/{job_id}/status", hx),
        "api GET": (api, f"/api/v1/jobs/{job_id}", bearer),
        "job page": (browser, f"/jobs/{job_id}", {}),
    }
    print(f"# bench/status_cost.py — {machine()}")
    for name, (client, path, headers) in cases.items():
        client.get(path, headers=headers)
        started = time.perf_counter()
        for _ in range(args.requests):
            answer = client.get(path, headers=headers)
        cost = (time.perf_counter() - started) / args.requests * 1e6
        print(f"{name:28s} {cost:7.0f} µs/request  (HTTP {answer.status_code})", flush=True)
    picks = random.Random(7)

    def submit() -> int:
        lots = picks.sample(range(1, 51), picks.randint(1, 40))
        body = {"kind": "potting_lot_labels", "params": {"lot_ids": lots}}
        return api.post("/api/v1/jobs", json=body, headers=bearer).status_code

    submit()
    started = time.perf_counter()
    statuses = {submit() for _ in range(args.requests)}
    cost = (time.perf_counter() - started) / args.requests * 1e6
    print(f"{'submit':28s} {cost:7.0f} µs/request  (HTTP {sorted(statuses)})", flush=True)
    if args.profile:
        profile = cProfile.Profile()
        if args.profile == "submit":
            profile.runcall(lambda: [submit() for _ in range(args.requests)])
        else:
            client, path, headers = cases[args.profile]
            profile.runcall(
                lambda: [client.get(path, headers=headers) for _ in range(args.requests)]
            )
        pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
    os.environ.pop("PRESSROOM_DATA", None)


if __name__ == "__main__":
    main()
