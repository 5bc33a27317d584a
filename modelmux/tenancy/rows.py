"""Records to table rows and back, and the rules every store applies to a write. No I/O.

Both stores keep one column per record field, in the record's field order; ``models`` and
``metadata`` are JSON text (SQLite TEXT, PostgreSQL JSONB). A change is applied to the
record read from the store, so the row written back is always a whole, checked record.
"""

from __future__ import annotations

import time
from typing import Any, TypeVar

import msgspec

from modelmux.tenancy.records import PERIODS, ROLES, Key, Team, User

Record = TypeVar("Record", Team, User, Key)

KINDS: dict[str, type[Team | User | Key]] = {"team": Team, "user": User, "key": Key}
TABLES = {"team": "tenancy_teams", "user": "tenancy_users", "key": "tenancy_keys"}
JSON_FIELDS = frozenset({"models", "metadata"})
FIXED_FIELDS = frozenset({"id", "created_at"})
"""Fields an update may not change."""

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def columns(kind: str) -> tuple[str, ...]:
    """The table's columns for ``kind`` ("team", "user", "key"), in record field order."""
    return KINDS[kind].__struct_fields__


def to_row(record: Team | User | Key) -> tuple[Any, ...]:
    """The column values of ``record``, JSON fields encoded."""
    values = []
    for name in record.__struct_fields__:
        value = getattr(record, name)
        if name in JSON_FIELDS:
            value = None if value is None else _encode(list(value) if name == "models" else value
                                                       ).decode("utf-8")
        values.append(value)
    return tuple(values)


def from_row(kind: str, row: Any) -> Any:
    """The record of ``kind`` from a row (a sequence in ``columns(kind)`` order)."""
    values = dict(zip(columns(kind), row, strict=True))
    for name in JSON_FIELDS:
        raw = values[name]
        if raw is not None:
            decoded = _decode(raw)
            values[name] = tuple(decoded) if name == "models" else decoded
    return KINDS[kind](**values)


def checked(record: Record) -> Record:
    """``record`` when its role and budget period are known names.

    Raises:
        ValueError: an unknown role or budget period.
    """
    role = getattr(record, "role", "user")
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if record.budget_period not in PERIODS:
        raise ValueError(f"unknown budget_period {record.budget_period!r}; "
                         f"one of {', '.join(PERIODS)}")
    return record


def created(record: Record, now: float | None = None) -> Record:
    """``record`` checked, with ``created_at`` set to now when it was left at 0."""
    if not record.created_at:
        record = msgspec.structs.replace(record, created_at=time.time() if now is None else now)
    return checked(record)


def changed(record: Record, changes: dict[str, Any]) -> Record:
    """``record`` with ``changes`` applied (``models`` may be a list), checked.

    Raises:
        ValueError: an unknown or fixed field, or a value the record does not accept.
    """
    fields = set(record.__struct_fields__)
    for name in changes:
        if name not in fields or name in FIXED_FIELDS:
            raise ValueError(f"{type(record).__name__.lower()} field {name!r} cannot be changed")
    values = dict(changes)
    if isinstance(values.get("models"), list):
        values["models"] = tuple(values["models"])
    merged = msgspec.structs.asdict(record) | values
    try:
        return checked(msgspec.convert(merged, type(record)))
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from None
