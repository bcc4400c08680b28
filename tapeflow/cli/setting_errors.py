"""A setting the environment or `.env` got wrong, said in one line that names the variable to fix."""

from __future__ import annotations

from typing import TypeGuard

from pydantic import ValidationError

from tapeflow.config import Settings, secret_fields


def is_settings_error(exc: BaseException) -> TypeGuard[ValidationError]:
    """Whether `exc` is pydantic refusing a TAPEFLOW_* value (not a flow parameter or a vendor payload)."""
    return isinstance(exc, ValidationError) and exc.title == Settings.__name__


def settings_refusal(exc: ValidationError) -> str:
    """One line: each refused variable, its value (a secret's stays hidden) and what it should be."""
    secrets = set(secret_fields())
    parts = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        shown = "" if field in secrets else f"={error['input']}"
        # pydantic's messages start with a capital ("Input should be ..."): mid-sentence here.
        parts.append(f"TAPEFLOW_{field.upper()}{shown}: {error['msg'][:1].lower()}{error['msg'][1:]}")
    return "; ".join(parts) + " (docs/configuration.md lists the settings)"
