"""What a console process is configured with: from ``posfleet serve`` options, or from
the environment when uvicorn starts several worker processes (:meth:`from_env`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from fleet.access import Limits, SessionTimes

__all__ = ["WebSettings"]


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class WebSettings:
    db: str | None = None
    """Database URL or SQLite file (``--db`` / ``POSFLEET_DB``)."""
    policy_path: Path | None = None
    limits: Limits = field(default_factory=Limits)
    times: SessionTimes = field(default_factory=SessionTimes)
    secure_cookies: bool = False
    """Cookies marked ``Secure`` (set it when the console is reached over https)."""
    max_body: int = 64 * 1024
    """Largest request body accepted (bytes): 413 beyond."""
    dashboard_ttl_s: float = 60.0
    """How old the dashboard's aggregates may be before one process refreshes them."""
    page_size: int = 50
    deliver_webhooks: bool = False
    """Run the webhook sender in a thread of this process too."""
    pool_size: int = 10
    flag_every_s: float = 300.0
    """How often terminals newly P1 are looked for (``terminal.flagged``); 0: never."""

    ENV_PREFIX = "POSFLEET_WEB_"

    def to_env(self) -> dict[str, str]:
        env = {
            "POSFLEET_WEB_SECURE_COOKIES": "1" if self.secure_cookies else "0",
            "POSFLEET_WEB_DELIVER_WEBHOOKS": "1" if self.deliver_webhooks else "0",
            "POSFLEET_WEB_DASHBOARD_TTL": str(self.dashboard_ttl_s),
            "POSFLEET_WEB_FLAG_EVERY": str(self.flag_every_s),
        }
        if self.db:
            env["POSFLEET_DB"] = self.db
        if self.policy_path:
            env["POSFLEET_POLICY"] = str(self.policy_path)
        return env

    @classmethod
    def from_env(cls) -> WebSettings:
        policy = os.environ.get("POSFLEET_POLICY")
        return cls(
            db=os.environ.get("POSFLEET_DB"),
            policy_path=Path(policy) if policy else None,
            secure_cookies=_flag("POSFLEET_WEB_SECURE_COOKIES"),
            deliver_webhooks=_flag("POSFLEET_WEB_DELIVER_WEBHOOKS"),
            dashboard_ttl_s=float(os.environ.get("POSFLEET_WEB_DASHBOARD_TTL", "60")),
            flag_every_s=float(os.environ.get("POSFLEET_WEB_FLAG_EVERY", "300")),
        )
