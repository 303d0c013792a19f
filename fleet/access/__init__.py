"""Who may use the console and the API, and as what.

=====================  ===============================================================
module                 owns
=====================  ===============================================================
:mod:`.roles`          the five roles and the permission matrix (pure)
:mod:`.secrets`        password hashing (Argon2id), random tokens and their hashes, CSRF
:mod:`.users`          users: add, list, disable, reset, change a password, sign in
:mod:`.sessions`       browser sessions and API tokens (stored hashed), → a principal
:mod:`.throttle`       counters in the database shared by every process
:mod:`.models`         the tables
=====================  ===============================================================

Sits just above :mod:`fleet.core`; imports no domain.
"""

from __future__ import annotations

from fleet.access.errors import NotAllowedError, NotSignedInError, ThrottledError
from fleet.access.roles import MATRIX, ROLES, Perm, Role, allowed, parse_role, sees_contacts
from fleet.access.sessions import (
    TOKEN_PREFIX,
    Principal,
    SessionTimes,
    TokenInfo,
    close_session,
    create_token,
    list_tokens,
    open_session,
    resolve_session,
    resolve_token,
    revoke_token,
)
from fleet.access.users import (
    Limits,
    User,
    add_user,
    change_password,
    disable_user,
    get_user,
    list_users,
    reset_password,
    sign_in,
)

__all__ = [
    "MATRIX",
    "ROLES",
    "TOKEN_PREFIX",
    "Limits",
    "NotAllowedError",
    "NotSignedInError",
    "Perm",
    "Principal",
    "Role",
    "SessionTimes",
    "ThrottledError",
    "TokenInfo",
    "User",
    "add_user",
    "allowed",
    "change_password",
    "close_session",
    "create_token",
    "disable_user",
    "get_user",
    "list_tokens",
    "list_users",
    "open_session",
    "parse_role",
    "reset_password",
    "resolve_session",
    "resolve_token",
    "revoke_token",
    "sees_contacts",
    "sign_in",
]
