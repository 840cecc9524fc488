"""`flask --app webapp <command>` and the `pressroom` console script (DESIGN §5)."""

from __future__ import annotations

from pathlib import Path

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from webapp import config as config_module
from webapp.db import write_txn
from webapp.extensions import db
from webapp.models import Role, User

DEMO_USERS = (
    ("staff@example.com", "staff", Role.STAFF, "Sanne de Vries"),
    ("admin@example.com", "admin", Role.ADMIN, "Jürgen Ødegård"),
)

users_cli = AppGroup("users", help="Manage user accounts.")
tokens_cli = AppGroup("tokens", help="Manage API tokens.")
lots_cli = AppGroup("potting-lots", help="Potting lots of the nursery.")
lab_cli = AppGroup("lab", help="The veterinary pathology lab.")
schedules_cli = AppGroup("schedules", help="Scheduled reports (SCHEDULES).")


def init_db() -> None:
    """Create the secret key once and bring the database schema up to date."""
    from flask_migrate import upgrade

    data = config_module.data_dir(current_app.config)
    data.mkdir(parents=True, exist_ok=True)
    key = config_module.ensure_secret_key(data)
    current_app.config["SECRET_KEY"] = current_app.config.get("SECRET_KEY") or key
    for folder in (current_app.config["ARTIFACT_DIR"], current_app.config["OUTBOX_DIR"]):
        Path(folder).mkdir(parents=True, exist_ok=True)
    upgrade(directory=str(Path(__file__).parent / "migrations"))
    from webapp.db import analyze

    analyze()


@click.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Create or migrate the database (and the secret key, once)."""
    init_db()
    click.echo(f"Database ready: {db.engine.url.render_as_string(hide_password=True)}")


def seed_demo(lots: int, protocols: int = 0) -> list[tuple[str, str]]:
    """Demo users, potting lots and the lab's records (their reception labels queued);
    returns the (email, password) logins it created."""
    from webapp.lab.demo import seed_lab
    from webapp.lab.service import queue_documents
    from webapp.nursery.demo import seed_lots

    logins = []
    with write_txn() as session:
        for email, password, role, name in DEMO_USERS:
            if session.scalars(sa.select(User).where(User.email == email)).first() is None:
                user = User(email=email, role=role, name=name)
                user.set_password(password)
                session.add(user)
                logins.append((email, password))
    if lots:
        seed_lots(lots)
    if protocols:
        ids = seed_lab(protocols)
        with write_txn() as session:
            queue_documents(session, ids)
    return logins


DEMO_LOTS, DEMO_PROTOCOLS = 300, 60


@click.command("seed-demo")
@click.option(
    "--lots",
    type=click.IntRange(0),
    help=f"Potting lots to add (only the nursery; {DEMO_LOTS} by default).",
)
@click.option(
    "--protocols",
    type=click.IntRange(0),
    help=f"Lab protocols to add (only the lab; {DEMO_PROTOCOLS} by default).",
)
@with_appcontext
def seed_demo_command(lots: int | None, protocols: int | None) -> None:
    """Add realistic demo data: users, potting lots and lab protocols with reports and work
    orders. --lots seeds only the nursery, --protocols only the lab; neither seeds both."""
    if lots is None and protocols is None:
        lots, protocols = DEMO_LOTS, DEMO_PROTOCOLS
    for email, password in seed_demo(lots or 0, protocols or 0):
        click.echo(f"login: {email} / {password}")
    if lots:
        click.echo(f"Added {lots} potting lots.")
    if protocols:
        click.echo(
            f"Added {protocols} lab protocols (reports, work orders); their labels are queued."
        )


@users_cli.command("create")
@click.argument("email")
@click.option(
    "--role", type=click.Choice([r.value for r in Role]), default="staff", show_default=True
)
@click.option("--password", help="Asked for when left out.")
@click.option("--name", default="")
def users_create(email: str, role: str, password: str | None, name: str) -> None:
    """Create a user account."""
    if _user_by_email(email) is not None:
        raise click.ClickException(f"A user with email {email} already exists.")
    if not password:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 4:
        raise click.ClickException("The password must have at least 4 characters.")
    user = User(email=email, role=role, name=name)
    user.set_password(password)
    with write_txn() as session:
        if _user_by_email(email) is not None:  # created meanwhile (the prompt can take a while)
            raise click.ClickException(f"A user with email {email} already exists.")
        session.add(user)
    click.echo(f"Created {role} {email}.")


def _user_by_email(email: str) -> User | None:
    return db.session.scalars(
        sa.select(User).where(sa.func.lower(User.email) == email.lower())
    ).first()


@users_cli.command("set-password")
@click.argument("email")
@click.option("--password", help="Asked for when left out.")
def users_set_password(email: str, password: str | None) -> None:
    """Give EMAIL a new password; it is logged out everywhere (sessions and remember-me)."""
    from webapp.auth import change_password

    user = _user_by_email(email)
    if user is None:
        raise click.ClickException(f"No user with email {email}.")
    if not password:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    if len(password) < 4:
        raise click.ClickException("The password must have at least 4 characters.")
    change_password(user.id, password)
    click.echo(f"New password set for {user.email}; its sessions have ended.")


@tokens_cli.command("create")
@click.argument("email")
@click.option("--name", default="", help="What the token is for (shown by 'tokens list').")
@click.option(
    "--expires-days", type=click.IntRange(min=1), help="Valid this many days (default: no end)."
)
def tokens_create(email: str, name: str, expires_days: int | None) -> None:
    """Create an API token for EMAIL; the token is printed alone on the last line."""
    from datetime import timedelta

    from webapp.auth import create_token
    from webapp.models import utcnow

    user = _user_by_email(email)
    if user is None:
        raise click.ClickException(f"No user with email {email}; create one with 'users create'.")
    expires = utcnow() + timedelta(days=expires_days) if expires_days else None
    token = create_token(user, name=name, expires_at=expires)
    until = f", valid until {expires:%Y-%m-%d %H:%M} UTC" if expires else ""
    click.echo(f"API token for {user.email}{until} (shown once; store it safely):")
    click.echo(token)


@tokens_cli.command("list")
@click.option("--user", "email", help="Only the tokens of this user.")
def tokens_list(email: str | None) -> None:
    """The API tokens: id, user, name, created, last used, expires (times in UTC)."""
    from sqlalchemy.orm import joinedload

    from webapp.auth import last_uses
    from webapp.models import ApiToken, utcnow

    query = sa.select(ApiToken).options(joinedload(ApiToken.user)).order_by(ApiToken.id)
    if email:
        user = _user_by_email(email)
        if user is None:
            raise click.ClickException(f"No user with email {email}.")
        query = query.where(ApiToken.user_id == user.id)
    rows = list(db.session.scalars(query))
    if not rows:
        click.echo("No API tokens.")
        return
    used = last_uses(rows)
    now = utcnow()

    def when(moment: object) -> str:
        return f"{moment:%Y-%m-%d %H:%M}" if moment else "-"

    table = [("ID", "USER", "NAME", "CREATED", "LAST USED", "EXPIRES")]
    for row in rows:
        expires = when(row.expires_at) if row.expires_at else "never"
        if row.expires_at and row.expires_at <= now:
            expires += " (expired)"
        table.append(
            (
                str(row.id),
                row.user.email,
                row.name or "-",
                when(row.created_at),
                when(used[row.id]),
                expires,
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


@tokens_cli.command("revoke")
@click.argument("token_id", type=int)
def tokens_revoke(token_id: int) -> None:
    """Revoke the API token TOKEN_ID (see 'tokens list'): it stops working at once."""
    from webapp.auth import revoke_token

    email = revoke_token(token_id)
    if email is None:
        raise click.ClickException(f"No API token with id {token_id}; see 'tokens list'.")
    click.echo(f"Revoked API token {token_id} of {email}.")


@lots_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--locale",
    type=click.Choice(("en", "nl", "es")),
    default="en",
    show_default=True,
    help="How to read dates and numbers the file leaves ambiguous (en, nl, es).",
)
@click.option("--dry-run", is_flag=True, help="Check every row and say what would change.")
def lots_import(file: Path, locale: str, dry_run: bool) -> None:
    """Import potting lots from a CSV or Excel (.xlsx) file (upsert by lot number; all rows or
    none). Columns are found by their names (English, Dutch or Spanish), as in the browser."""
    from webapp.nursery.importer import ImportFailed, Options, commit, plan_file

    try:
        plan = plan_file(file.read_bytes(), Options(locale))
        if dry_run:
            if not plan.ok:
                raise ImportFailed(plan.errors())
            counts = plan.counts()
            click.echo(
                f"Dry run, nothing imported: {len(plan.rows)} rows: {counts['new']} new, "
                f"{counts['updated']} updated, {counts['unchanged']} unchanged."
            )
            return
        result = commit(plan)
    except ImportFailed as exc:
        for error in exc.errors:
            click.echo(f"{file}: {error}", err=True)
        raise click.ClickException(
            "Nothing was imported; fix the rows above and run it again."
        ) from None
    click.echo(
        f"Imported {result.total} rows: {result.created} new, {result.updated} updated, "
        f"{result.unchanged} unchanged."
    )


@lab_cli.command("receive")
@click.argument("protocol_id", type=int)
def lab_receive(protocol_id: int) -> None:
    """Receive a protocol (as the reception page does): its number, and its label queued."""
    from webapp.errors import JobError
    from webapp.lab.service import get_protocol, receive_protocol
    from webapp.models import Origin

    try:
        job = receive_protocol(protocol_id, None, Origin.EVENT)
    except JobError as exc:
        raise click.ClickException(exc.msg.english()) from None
    protocol = get_protocol(protocol_id)
    click.echo(f"Received protocol {protocol_id} as {protocol.number}; label job {job.id}.")


@schedules_cli.command("tick")
@click.option("--at", "at", help="The moment to tick at (ISO 8601; default now, naive = UTC).")
def schedules_tick(at: str | None) -> None:
    """Run whatever is due (each period once: another tick that got there first is fine)."""
    from datetime import datetime

    from webapp import schedules

    moment = None
    if at:
        try:
            moment = datetime.fromisoformat(at)
        except ValueError:
            raise click.BadParameter(
                f"{at!r} is not an ISO date and time", param_hint="--at"
            ) from None
    made = schedules.tick(moment)
    for schedule, period, job_id in made:
        click.echo(f"{schedule}: {period} → job {job_id or '(refused, see the log)'}")
    if not made:
        click.echo("Nothing due.")


def init_app(app: Flask) -> None:
    for command in (
        init_db_command,
        seed_demo_command,
        users_cli,
        tokens_cli,
        lots_cli,
        lab_cli,
        schedules_cli,
    ):
        app.cli.add_command(command)
