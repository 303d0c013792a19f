"""Roles and what each may do: the console's and the API's one permission matrix. Pure.

Five roles, least privilege (``docs/console.md`` shows the matrix per route, and a test
holds the running app to it):

- ``admin``: everything, and alone manages users, API tokens and webhooks;
- ``ops``: reads everything but the audit log, controls rollouts (pause, resume,
  cancel), exports CSV, verifies references;
- ``engineer``: reads the fleet (terminals, replacements, fee tables, rollouts, swaps)
  and acts on devices (sync, push) and swaps;
- ``agent`` (the call centre): the verify page, terminals and notices with contacts
  masked, records a complaint, an opt-out or a follow-up outcome;
- ``auditor``: reads everything, the audit log included, and exports; changes nothing;
  contacts masked (an audit needs who and when, not a number to dial).

>>> allowed(Role.AGENT, Perm.VERIFY), allowed(Role.AGENT, Perm.ROLLOUT_CONTROL)
(True, False)
>>> sees_contacts(Role.OPS), sees_contacts(Role.AGENT), sees_contacts(Role.AUDITOR)
(True, False, False)
"""

from __future__ import annotations

import enum

from fleet.core.errors import InputError

__all__ = ["MATRIX", "ROLES", "Perm", "Role", "allowed", "parse_role", "sees_contacts"]


class Role(enum.StrEnum):
    ADMIN = "admin"
    OPS = "ops"
    ENGINEER = "engineer"
    AGENT = "agent"
    AUDITOR = "auditor"


ROLES = tuple(r.value for r in Role)


class Perm(enum.StrEnum):
    DASHBOARD = "dashboard"
    TERMINALS = "terminals.read"
    REPLACEMENTS = "replacements.read"
    FEES = "fees.read"
    ROLLOUTS = "rollouts.read"
    ROLLOUT_CONTROL = "rollouts.control"
    SWAPS = "swaps.read"
    SWAP = "swaps.operate"
    DEVICE = "device.operate"
    NOTICES = "notices.read"
    VERIFY = "verify"
    CONTACT = "contact.record"
    EXPORT = "export"
    AUDIT = "audit.read"
    CONTACTS = "contacts.unmasked"
    USERS = "users.admin"
    TOKENS = "tokens.admin"
    WEBHOOKS = "webhooks.admin"


_READ_FLEET = {Perm.DASHBOARD, Perm.TERMINALS, Perm.REPLACEMENTS, Perm.FEES, Perm.ROLLOUTS,
               Perm.SWAPS}  # fmt: skip

MATRIX: dict[Role, frozenset[Perm]] = {
    Role.ADMIN: frozenset(Perm),
    Role.OPS: frozenset(
        _READ_FLEET | {Perm.NOTICES, Perm.ROLLOUT_CONTROL, Perm.EXPORT, Perm.VERIFY, Perm.CONTACTS}
    ),
    Role.ENGINEER: frozenset(_READ_FLEET | {Perm.DEVICE, Perm.SWAP, Perm.CONTACTS}),
    Role.AGENT: frozenset({Perm.VERIFY, Perm.CONTACT, Perm.TERMINALS, Perm.NOTICES}),
    Role.AUDITOR: frozenset(_READ_FLEET | {Perm.NOTICES, Perm.AUDIT, Perm.EXPORT}),
}


def allowed(role: Role | str, perm: Perm) -> bool:
    return perm in MATRIX[Role(role)]


def sees_contacts(role: Role | str) -> bool:
    """Whether ``role`` sees whole phone numbers and emails (else masked)."""
    return allowed(role, Perm.CONTACTS)


def parse_role(text: str) -> Role:
    try:
        return Role(text.strip().lower())
    except ValueError:
        raise InputError(
            f"unknown role {text!r} (one of {', '.join(ROLES)})", where="role"
        ) from None
