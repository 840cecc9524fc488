"""The `pressroom` console script: the app's commands (webapp/cli.py) plus `run`, the whole service."""

from __future__ import annotations

import sys

from flask.cli import FlaskGroup


def main() -> None:
    from webapp import create_app
    from workers.supervisor import run_command

    group = FlaskGroup(
        create_app=lambda: create_app(),
        add_version_option=False,
        help="Pressroom: background PDF jobs.",
    )
    group.add_command(run_command, "run")
    sys.exit(group.main())
