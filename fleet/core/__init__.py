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
``db``              engines, the schema's revision, migrations (SQLAlchemy, Alembic)
``models``          the tables (SQLModel)
``audit``           the audit log: record and query
==================  ====================================================================

This face re-exports the light half (standard library only, so that a command's start
costs nothing for it). ``db``, ``models`` and ``audit`` bring SQLAlchemy, SQLModel and
Alembic: import them by name (``from fleet.core import db``, ``fleet.core.models``) where
the database is used.
"""

from __future__ import annotations

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
