"""The shared core every domain builds on. It imports no domain.

==================  ====================================================================
module              owns
==================  ====================================================================
``errors``          the :class:`FleetError` hierarchy: what went wrong, where, exit code
``policy``          the policy file (TOML): sections, defaults, validation
``records``         rows out of CSV/JSON/TOML files, schemas, :class:`RejectedFileError`
``values``          parsers of typed-in values (dates, phones, links, durations…)
``masking``         phone numbers and addresses as others may see them
``status``          a terminal's :class:`Status`
``actor``           who is acting (:func:`default_actor`) and the audit's actions
``money``           currency precision (Babel), ISO 4217 codes, parse and format money
``db``              engines, the schema's revision, migrations (SQLAlchemy, Alembic)
``models``          the tables (SQLModel)
``clauses``         bare Core clauses of the tables the quick commands touch
``audit``           the audit log: record and query
``leases``          claim, worker identity, backoff: work shared by many processes
==================  ====================================================================

This face re-exports the light half (standard library only), each name loaded from its
module on first use, so that a command's start costs nothing for it. ``db``, ``models``,
``clauses``, ``audit`` and ``leases`` bring SQLAlchemy (``models`` SQLModel too, ``db``
Alembic when it migrates): import them by name (``from fleet.core import db``,
``fleet.core.models``) where the database is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleet.core.actor import default_actor
    from fleet.core.errors import ConflictError, FleetError, InputError, JobError, NotFoundError
    from fleet.core.masking import mask_address, mask_phone, mask_phones, redact_addresses
    from fleet.core.policy import Policy, PolicyError
    from fleet.core.records import RejectedFileError, RowError
    from fleet.core.status import Status

__all__ = [
    "ConflictError",
    "FleetError",
    "InputError",
    "JobError",
    "NotFoundError",
    "Policy",
    "PolicyError",
    "RejectedFileError",
    "RowError",
    "Status",
    "default_actor",
    "mask_address",
    "mask_phone",
    "mask_phones",
    "redact_addresses",
]

_HOMES = {
    "actor": ("default_actor",),
    "errors": ("ConflictError", "FleetError", "InputError", "JobError", "NotFoundError"),
    "masking": ("mask_address", "mask_phone", "mask_phones", "redact_addresses"),
    "policy": ("Policy", "PolicyError"),
    "records": ("RejectedFileError", "RowError"),
    "status": ("Status",),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    """A name of the face, from its module, loaded on first use: importing one module of
    the core (``fleet.core.errors``, as every command does) does not load the others (the
    policy's parsers, the file readers)."""
    home = _HOME_OF.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
