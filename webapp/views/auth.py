"""Login, logout and the language choice."""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, login_required, logout_user
from flask_wtf import FlaskForm
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import BooleanField, EmailField, PasswordField, SelectField
from wtforms.validators import DataRequired

from webapp.auth import (
    MIN_PASSWORD_LENGTH,
    change_password,
    end_session,
    forget_account_attempts,
    login_limits,
    note_failed_login,
    safe_next,
    start_session,
)
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
@login_limits
def login() -> ResponseReturnValue:
    """Show the login form; on success go back to where the user was. Attempts are throttled
    per account and failed ones per address (webapp/auth.py; a post with an empty field is a
    failed one): past the limit, 429 until the window has passed, whatever the password."""
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
            forget_account_attempts()
            start_session(user)
            return redirect(next_url or url_for("nursery.potting_lots"))
        form.password.errors.append(_("Wrong email or password. Check both and try again."))
    if request.method == "POST":  # not logged in: a wrong password, or an empty field
        note_failed_login()
    elif request.args.get("expired"):
        flash(_("Your session expired. Log in again to continue where you were."), "info")
    return render_template("auth/login.html", form=form, next_url=next_url)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """End the session (also when it already ended: never a login detour back to a POST):
    the session cookie stops working even where it was saved, and so does this browser's
    remember-me cookie."""
    if current_user.is_authenticated:
        end_session(current_user.id)
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


class PasswordForm(FlaskForm):
    current = PasswordField(validators=[DataRequired()])
    new = PasswordField(validators=[DataRequired()])
    repeat = PasswordField(validators=[DataRequired()])


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
    return render_template("auth/account.html", form=form, password_form=PasswordForm(None))


@bp.post("/account/password")
@login_required
def password() -> ResponseReturnValue:
    """A new password: every other session and remember-me cookie of the user stops working;
    this browser stays logged in (a new session and remember-me value)."""
    form = PasswordForm()
    if form.validate_on_submit():
        if not current_user.check_password(form.current.data):
            form.current.errors.append(_("This is not your current password."))
        elif len(form.new.data) < MIN_PASSWORD_LENGTH:
            form.new.errors.append(_("Use at least %(num)d characters.", num=MIN_PASSWORD_LENGTH))
        elif form.new.data != form.repeat.data:
            form.repeat.errors.append(_("The two new passwords differ. Type them again."))
        else:
            user_id = current_user.id
            change_password(user_id, form.new.data)
            db.session.expire_all()
            user = db.session.get(User, user_id)
            assert user is not None
            start_session(user)
            flash(
                _("Your password is changed. Other browsers and devices are logged out."),
                "success",
            )
            return redirect(url_for("auth.account"), code=303)
    settings = AccountForm(locale=current_user.locale or "en", ready_mail=current_user.ready_mail)
    return render_template("auth/account.html", form=settings, password_form=form)
