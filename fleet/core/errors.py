"""The fleet's errors: one hierarchy, each error saying what went wrong and where.

Every error a domain raises for a person to read is a :class:`FleetError`. Its message
speaks of the domain (a terminal, a fee table, a file and line), never of a front end's
flags: the CLI and the web console word their own options. ``where`` names the place
(``terminals.csv:4``, ``PS00000009``, ``rules[1].rate``) and prefixes the message:

>>> str(NotFoundError("no such terminal", where="PS00000099"))
'PS00000099: no such terminal'
>>> NotFoundError("no such terminal").exit_code, JobError("link down").exit_code
(2, 1)

Front ends map the classes, not the messages: the CLI exits with :attr:`exit_code`
(2 for bad input or usage, 1 for a job that ran and failed), the API answers with
:attr:`http_status`, both in one place of their own.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "ConflictError",
    "FleetError",
    "InputError",
    "JobError",
    "NotFoundError",
]


class FleetError(Exception):
    """Base of every error the fleet raises for a person: a message, and where."""

    exit_code: ClassVar[int] = 1
    """What the CLI exits with: 2 for bad input or usage, 1 for a failed job."""
    http_status: ClassVar[int] = 500
    """What the API answers with."""

    def __init__(self, message: str, *, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.message, self.where, dict(self.__dict__)))


def _rebuild(
    cls: type[FleetError], message: str, where: str | None, state: dict[str, object]
) -> FleetError:
    err = cls.__new__(cls)
    FleetError.__init__(err, message, where=where)
    err.__dict__.update(state)
    return err


class InputError(FleetError):
    """Bad input: a value, a file, an option or a reference that cannot be used as given."""

    exit_code = 2
    http_status = 422


class NotFoundError(InputError):
    """A reference to something the fleet does not have (a serial, a merchant, a version)."""

    http_status = 404


class ConflictError(FleetError):
    """The fleet's state forbids it now (a terminal not in stock, a rollout already done)."""

    exit_code = 1
    http_status = 409


class JobError(FleetError):
    """A job ran and failed (a push, a sync, a dispatch, the database)."""

    exit_code = 1
    http_status = 502
