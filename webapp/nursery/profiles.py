"""Printer profiles: a user's saved layout, start position, printer offset and copies.

A profile is checked by the label kind's own params schema (`LabelParams`), so whatever a
profile holds is something a print job accepts."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from webapp.documents.base import validate
from webapp.documents.potting_lots import CustomLayout, LabelParams
from webapp.errors import InvalidParams
from webapp.extensions import db
from webapp.messages import Msg
from webapp.models import PrinterProfile, User, utcnow
from webapp.pdf.layout import CUSTOM, DEFAULT_LAYOUT, PRESETS, Layout, resolve

# The layout choices a profile's form offers: the presets, then one's own roll or sheet.
CUSTOM_ROLL, CUSTOM_SHEET = "custom_roll", "custom_sheet"
SIZE_FIELDS = ("label_w", "label_h", "page_w", "page_h", "left", "top", "gap_x", "gap_y")
COUNT_FIELDS = ("cols", "rows")
ROLL_FIELDS = ("label_w", "label_h")
FORM_FIELDS = (
    "name",
    "layout",
    *SIZE_FIELDS,
    *COUNT_FIELDS,
    "start_position",
    "copies",
    "offset_x",
    "offset_y",
)
NAME_MAX = 60


class ProfileInvalid(ValueError):
    """A profile form with problems: {form field: Msg}."""

    def __init__(self, fields: dict[str, Msg]) -> None:
        self.fields = fields
        super().__init__(", ".join(fields))


def for_user(user: User) -> list[PrinterProfile]:
    """The user's profiles, the one used last first."""
    return list(
        db.session.scalars(
            sa.select(PrinterProfile)
            .where(PrinterProfile.user_id == user.id)
            .order_by(
                PrinterProfile.last_used_at.desc().nulls_last(),
                PrinterProfile.name,
                PrinterProfile.id,
            )
        )
    )


def get(user: User, profile_id: Any) -> PrinterProfile | None:
    try:
        pid = int(profile_id)
    except (TypeError, ValueError):
        return None
    profile = db.session.get(PrinterProfile, pid) if 0 < pid < 2**63 else None
    return profile if profile is not None and profile.user_id == user.id else None


def layout_of(profile: PrinterProfile) -> Layout:
    return resolve(profile.layout, profile.custom)


def form_choice(profile: PrinterProfile | None) -> str:
    """The profile form's layout choice for a stored profile."""
    if profile is None:
        return DEFAULT_LAYOUT
    if profile.layout == CUSTOM:
        return CUSTOM_SHEET if (profile.custom or {}).get("kind") == "sheet" else CUSTOM_ROLL
    return profile.layout


def form_values(profile: PrinterProfile | None) -> dict[str, str]:
    """What the profile form shows for a stored profile (or a new one)."""
    sheet = {"kind": "sheet", "label_w": 70, "label_h": 37, "cols": 3, "rows": 8}  # as A4 3 × 8
    custom = CustomLayout.model_validate(sheet).model_dump()
    values: dict[str, Any] = {"layout": form_choice(profile), **custom}
    if profile is not None:
        values.update(
            name=profile.name,
            start_position=profile.start_position,
            copies=profile.copies,
            offset_x=profile.offset_x,
            offset_y=profile.offset_y,
            **(profile.custom or {}),
        )
    else:
        values.update(name="", start_position=1, copies=1, offset_x=0, offset_y=0)
    return {key: _shown(values.get(key, "")) for key in FORM_FIELDS}


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def number(raw: str, cast: type) -> Any:
    """A number as typed ("10,5" too); ValueError when it is none."""
    text = raw.strip().replace(",", ".")
    if cast is int:
        return int(text)
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(text)
    return value


def parse(form: Any, user: User, profile: PrinterProfile | None) -> dict[str, Any]:
    """The form's profile (name, layout, custom, start_position, offsets, copies), checked by
    the label kind's schema; ProfileInvalid names each bad form field."""
    problems: dict[str, Msg] = {}
    name = " ".join((form.get("name") or "").split())
    if not name:
        problems["name"] = Msg("field_required")
    elif len(name) > NAME_MAX:
        problems["name"] = Msg("field_too_long", {"limit": NAME_MAX})
    else:
        clash = db.session.scalar(
            sa.select(PrinterProfile.id).where(
                PrinterProfile.user_id == user.id,
                PrinterProfile.name == name,
                PrinterProfile.id != (profile.id if profile else 0),
            )
        )
        if clash:
            problems["name"] = Msg("profile_name_taken")
    choice = form.get("layout") or ""
    if choice not in PRESETS and choice not in (CUSTOM_ROLL, CUSTOM_SHEET):
        problems["layout"] = Msg("unknown_layout")
    numbers: dict[str, Any] = {}
    wanted = {"start_position": int, "copies": int, "offset_x": float, "offset_y": float}
    if choice == CUSTOM_ROLL:
        wanted.update(dict.fromkeys(ROLL_FIELDS, float))
    elif choice == CUSTOM_SHEET:
        wanted.update(dict.fromkeys(SIZE_FIELDS, float))
        wanted.update(dict.fromkeys(COUNT_FIELDS, int))
    for key, cast in wanted.items():
        raw = form.get(key) or ""
        if not raw.strip():
            problems[key] = Msg("field_required")
            continue
        try:
            numbers[key] = number(raw, cast)
        except ValueError:
            problems[key] = Msg("field_integer" if cast is int else "field_number")
    custom: dict[str, Any] | None = None
    if choice in (CUSTOM_ROLL, CUSTOM_SHEET):
        custom = {"kind": "sheet" if choice == CUSTOM_SHEET else "roll"}
        custom.update({k: numbers[k] for k in (*SIZE_FIELDS, *COUNT_FIELDS) if k in numbers})
    if not problems:
        params = {
            "lot_ids": [1],
            "layout": CUSTOM if custom else choice,
            **({"custom_layout": custom} if custom else {}),
            **{k: numbers[k] for k in ("start_position", "copies", "offset_x", "offset_y")},
        }
        try:
            checked = validate(LabelParams, params)
        except InvalidParams as exc:
            for path, msg in exc.fields.items():
                key = path.removeprefix("custom_layout.")
                problems.setdefault(key if key in FORM_FIELDS else "layout", msg)
        else:
            custom = checked.custom_dict()
    if problems:
        raise ProfileInvalid(problems)
    return {
        "name": name,
        "layout": CUSTOM if custom else choice,
        "custom": custom,
        "start_position": numbers["start_position"],
        "copies": numbers["copies"],
        "offset_x": round(numbers["offset_x"], 1),
        "offset_y": round(numbers["offset_y"], 1),
    }


def save(user: User, profile: PrinterProfile | None, values: dict[str, Any]) -> PrinterProfile:
    """Create or update; a saved profile becomes the one preselected."""
    if profile is None:
        profile = PrinterProfile(user_id=user.id)
        db.session.add(profile)
    for key, value in values.items():
        setattr(profile, key, value)
    profile.last_used_at = utcnow()
    db.session.commit()
    return profile


def mark_used(profile: PrinterProfile) -> None:
    profile.last_used_at = utcnow()
    db.session.commit()


def delete(profile: PrinterProfile) -> None:
    db.session.delete(profile)
    db.session.commit()


def describe(layout_key: str, custom: dict[str, Any] | None) -> str:
    """A layout as the pages name it: a preset's name, or a custom layout's sizes."""
    from flask_babel import gettext

    from webapp.messages import number as grouped
    from webapp.templating import layout_name

    if layout_key != CUSTOM or not custom:
        return layout_name(layout_key)
    size = {"w": _shown(float(custom["label_w"])), "h": _shown(float(custom["label_h"]))}
    if custom.get("kind") != "sheet":
        return gettext("Custom roll, %(w)s × %(h)s mm", **size)
    return gettext(
        "Custom sheet, %(cols)s × %(rows)s labels of %(w)s × %(h)s mm",
        cols=grouped(custom["cols"]),
        rows=grouped(custom["rows"]),
        **size,
    )
