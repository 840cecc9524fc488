"""Login, logout and the language choice."""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import BooleanField, EmailField, PasswordField, SelectField
from wtforms.validators import DataRequired

from webapp.auth import safe_next
from webapp.db import write_txn
from webapp.extensions import db
from webapp.models import User

bp = Blueprint("auth", __name__)


class LoginForm(FlaskForm):
    # No Email() validator: it needs the email_validator package, and an address that is no
    # account's is answered by "wrong email or password" anyway. WTForms translates its messages.
    email = EmailField("Email", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


_DUMMY_HASH: list[str] = []


def unknown_account_check(password: str) -> None:
    """Spend what checking a real password costs, so a wrong address answers as slowly as a
    wrong password (otherwise the time tells who has an account)."""
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(generate_password_hash(secrets.token_hex(16)))
    check_password_hash(_DUMMY_HASH[0], password)


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """Show the login form; on success go back to where the user was."""
    form = LoginForm()
    next_url = safe_next(request.values.get("next"))
    if form.validate_on_submit():
        user = db.session.scalars(
            sa.select(User).where(sa.func.lower(User.email) == form.email.data.strip().lower())
        ).first()
        if user is None:
            unknown_account_check(form.password.data)  # as slow as a real check: no account oracle
        elif user.check_password(form.password.data):
            # Permanent: the cookie is re-signed on every request (polls included), so a page
            # left open all day keeps its session and with it the CSRF token in its forms.
            session.permanent = True
            login_user(user, remember=True)
            return redirect(next_url or url_for("nursery.potting_lots"))
        form.password.errors.append(_("Wrong email or password. Check both and try again."))
    elif request.args.get("expired"):
        flash(_("Your session expired. Log in again to continue where you were."), "info")
    return render_template("auth/login.html", form=form, next_url=next_url)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """End the session (also when it already ended: never a login detour back to a POST)."""
    logout_user()
    return redirect(url_for("auth.login"))


class LanguageForm(FlaskForm):
    # plain values: tuples are deprecated in WTForms 3.3
    locale = SelectField(choices=["en", "nl", "es"])


@bp.post("/settings/language")
@login_required
def language() -> ResponseReturnValue:
    """Remember the user's language."""
    form = LanguageForm()
    if form.validate_on_submit():
        with write_txn() as session:
            session.execute(
                sa.update(User).where(User.id == current_user.id).values(locale=form.locale.data)
            )
    return redirect(safe_next(request.form.get("next")) or url_for("jobs.index"))


@bp.get("/")
def home() -> ResponseReturnValue:
    """The start page is the potting-lot table."""
    return redirect(url_for("nursery.potting_lots"))


class AccountForm(FlaskForm):
    locale = SelectField(choices=["en", "nl", "es"])
    ready_mail = BooleanField()


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account() -> ResponseReturnValue:
    """The user's own settings: language, and the mail when a long job is ready."""
    form = AccountForm(locale=current_user.locale or "en", ready_mail=current_user.ready_mail)
    if form.validate_on_submit():
        with write_txn() as session:
            session.execute(
                sa.update(User)
                .where(User.id == current_user.id)
                .values(locale=form.locale.data, ready_mail=bool(form.ready_mail.data))
            )
        flash(_("Your settings are saved."), "success")
        return redirect(url_for("auth.account"), code=303)
    return render_template("auth/account.html", form=form)
