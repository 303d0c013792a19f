"""The fee domain's errors (part of the :mod:`fleet.core.errors` hierarchy)."""

from __future__ import annotations

from fleet.core.errors import ConflictError, InputError

__all__ = ["FeeFileError", "NoticePeriodError"]


class FeeFileError(InputError, ValueError):
    """A fee-table file (or group, or basket) that can't be used; the message starts with
    the rule and key (``rules[2].rate: …``)."""


class NoticePeriodError(ConflictError):
    """A raise that takes effect sooner than the notice period allows; publishing it needs
    an override reason (which is audited)."""
