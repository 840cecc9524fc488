"""Status polling throughput with Debian's `wrk` against gunicorn: requests/s.

    .venv/bin/python bench/status_wrk.py [--duration 10] [--connections 16] [--web-workers N]
                                         [--threads T]

The floor and three URLs of one live (queued) job, each for --duration seconds:
- a static file's 304 with the session cookie (what a browser sends): the cheapest answer the
  same server gives, against which the others are rated (target >= 0.5 x);
- the status fragment with the watch token the job page gives its polls (webapp/jobs/poll.py),
  rendered every time (as after each change);
- the same with `If-None-Match` (what htmx's polling sends after the first answer: a 304);
- `GET /api/v1/jobs/<id>` with a Bearer token.
wrk is a native load generator (2 threads), so the Python client does not compete with
gunicorn for the 2 cores. Target (DESIGN §6): >= 1,500 requests/s on 2 cores.
N and T default to what `pressroom run` starts on this machine (2 per core, 2 threads each).
"""

from __future__ import annotations

import argparse
import http.client
import logging
import re
import shutil
import subprocess
from urllib.parse import urlsplit

from common import STAFF_EMAIL, machine
from stack import WEB_PROCESSES, Stack, create_token, login_cookie

from workers.processes import WEB_THREADS


def submit_job(stack: Stack) -> str:
    import sqlalchemy as sa

    from webapp import jobs
    from webapp.extensions import db
    from webapp.models import User

    with stack.app.app_context():
        user = db.session.scalars(sa.select(User).where(User.email == STAFF_EMAIL)).one()
        job, _ = jobs.submit(user, "potting_lot_labels", {"lot_ids": list(range(1, 41))})
        return job.id


def get(base: str, path: str, headers: dict[str, str]) -> tuple[int, str | None, str]:
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.request("GET", path, headers=headers)
        answer = conn.getresponse()
        body = answer.read().decode(errors="replace")
        return answer.status, answer.headers.get("ETag"), body
    finally:
        conn.close()


def wrk(url: str, headers: dict[str, str], seconds: int, connections: int) -> dict[str, str]:
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    found = {
        "rps": re.search(r"Requests/sec:\s+([\d.]+)", out),
        "p50": re.search(r"\s50%\s+(\S+)", out),
        "p99": re.search(r"\s99%\s+(\S+)", out),
        "errors": re.search(r"Non-2xx or 3xx responses: (\d+)", out),
    }
    return {key: (match.group(1) if match else "0") for key, match in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--web-workers", type=int, default=WEB_PROCESSES)
    parser.add_argument("--threads", type=int, default=WEB_THREADS)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: sudo apt-get install wrk (or make system-deps)")
    logging.basicConfig(level=logging.WARNING)

    print(f"# bench/status_wrk.py — {machine()}")
    with Stack() as stack:
        stack.start_redis()
        stack.init_app(100)
        token = create_token(stack)
        job_id = submit_job(stack)
        base = stack.start_web(args.web_workers, args.threads)
        cookie = login_cookie(base)
        # The poll URL as the job page gives it to htmx (with its watch token).
        status, _etag, page = get(base, f"/jobs/{job_id}", {"Cookie": cookie})
        found = re.search(r'hx-get="([^"]+/status[^"]*)"', page)
        assert status == 200 and found, f"job page: HTTP {status}"
        fragment = found.group(1).replace("&amp;", "&")
        status, etag, _body = get(base, fragment, {"Cookie": cookie, "HX-Request": "true"})
        assert status == 200 and etag, f"status fragment: HTTP {status}"
        status, static_etag, _body = get(base, "/static/app.css", {"Cookie": cookie})
        assert status == 200 and static_etag, f"static file: HTTP {status}"
        status, _etag, _body = get(
            base, f"/api/v1/jobs/{job_id}", {"Authorization": f"Bearer {token}"}
        )
        assert status == 200, f"status API: HTTP {status}"
        print(
            f"# gunicorn gthread {args.web_workers} workers x {args.threads} threads; wrk -t2 "
            f"-c{args.connections} -d{args.duration}s; targets >= 1500 requests/s and >= 0.5 x "
            "the static 304"
        )
        cases = [
            (
                "static file (304, the floor)",
                "/static/app.css",
                {"Cookie": cookie, "If-None-Match": static_etag},
            ),
            (
                "status fragment (200, rendered)",
                fragment,
                {"Cookie": cookie, "HX-Request": "true"},
            ),
            (
                "status fragment (304, If-None-Match)",
                fragment,
                {"Cookie": cookie, "HX-Request": "true", "If-None-Match": etag},
            ),
            (
                "GET /api/v1/jobs/<id> (Bearer)",
                f"/api/v1/jobs/{job_id}",
                {"Authorization": f"Bearer {token}"},
            ),
        ]
        floor = 0.0
        for name, path, headers in cases:
            result = wrk(base + path, headers, args.duration, args.connections)
            rps = float(result["rps"])
            floor = floor or rps
            print(
                f"{name:38s} {rps:8.0f} req/s  x static {rps / floor:4.2f}  p50 "
                f"{result['p50']:>8s}  p99 {result['p99']:>8s}  non-2xx/3xx {result['errors']}",
                flush=True,
            )
    print(f"# load average at the end: {machine().rsplit('load average ', 1)[1]}")


if __name__ == "__main__":
    main()
