"""Access errors: on the fleet's hierarchy, with their HTTP statuses."""

from __future__ import annotations

from fleet.core.errors import FleetError

__all__ = ["NotAllowedError", "NotSignedInError", "ThrottledError"]


class NotSignedInError(FleetError):
    """No valid session or token, or a name and password that do not match."""

    exit_code = 2
    http_status = 401


class NotAllowedError(FleetError):
    """Signed in, but the role may not do this."""

    exit_code = 2
    http_status = 403


class ThrottledError(FleetError):
    """Too many attempts: wait ``retry_after`` seconds."""

    exit_code = 1
    http_status = 429

    def __init__(self, message: str, *, retry_after: int, where: str | None = None) -> None:
        super().__init__(message, where=where)
        self.retry_after = retry_after
