"""Who is acting, and what they can do, as the audit log names it: the actor every audit
entry carries and the actions it records. Stdlib only, so that naming the actor (every
command does) or listing the actions (in help) costs nothing."""

from __future__ import annotations

import getpass
import os

__all__ = ["ACTIONS", "default_actor"]

ACTIONS = (
    "import", "add", "update", "sync", "swap", "swap_plan", "swap_cancel", "swap_reschedule",
    "publish", "push", "override", "verify", "key", "sign_in", "contact",
)  # fmt: skip
"""What an audit entry records (``posfleet audit list --action``)."""


def default_actor() -> str:
    """``POSFLEET_ACTOR``, else the OS user (else ``uid-N`` when it has no name)."""
    env = os.environ.get("POSFLEET_ACTOR")
    if env:
        return env
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"
