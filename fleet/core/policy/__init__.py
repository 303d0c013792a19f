"""The fleet policy: one TOML file, every key optional, sensible defaults. Pure.

Found at ``--policy FILE``, else ``POSFLEET_POLICY``, else ``posfleet.toml`` in the
current directory when there is one, else the defaults. Unknown sections and keys are
errors (a typo must not silently fall back to a default):

>>> p = Policy.from_toml('[replacement]\\nmax_age_years = 6\\nrequire = ["contactless"]')
>>> p.replacement.max_age_years, p.replacement.require, p.replacement.horizon_days
(6, ('contactless',), 180)
>>> Policy.from_toml("[replacement]\\nmax_age = 6")  # doctest: +ELLIPSIS
Traceback (most recent call last):
fleet.core.policy.PolicyError: policy: replacement.max_age: unknown key (known: ...)

The sections (:mod:`fleet.core.policy.sections`) read and write their own TOML tables;
:mod:`fleet.core.policy.parsing` holds the value parsers they share (durations,
percentages, waves, clock ranges) and :class:`PolicyError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.core.files import DocumentError, FileTextError, load_toml, read_text
from fleet.core.policy.inbound import InboundPolicy
from fleet.core.policy.parsing import PolicyError, parse_clock_range, parse_waves, percent_ppm
from fleet.core.policy.sections import (
    CAPABILITIES,
    FeePolicy,
    MaintenancePolicy,
    NoticePolicy,
    ReplacementPolicy,
    RolloutPolicy,
    SwapPolicy,
)

__all__ = [
    "CAPABILITIES",
    "DEFAULT_POLICY_FILE",
    "FeePolicy",
    "InboundPolicy",
    "MaintenancePolicy",
    "NoticePolicy",
    "Policy",
    "PolicyError",
    "ReplacementPolicy",
    "RolloutPolicy",
    "SwapPolicy",
    "parse_clock_range",
    "parse_waves",
    "percent_ppm",
]

DEFAULT_POLICY_FILE = "posfleet.toml"

_SECTIONS: dict[str, Any] = {
    "replacement": ReplacementPolicy,
    "fees": FeePolicy,
    "rollout": RolloutPolicy,
    "notices": NoticePolicy,
    "swaps": SwapPolicy,
    "inbound": InboundPolicy,
    "maintenance": MaintenancePolicy,
}
"""TOML table → its section class, in the order ``to_toml`` writes them."""


@dataclass(frozen=True)
class Policy:
    replacement: ReplacementPolicy = field(default_factory=ReplacementPolicy)
    fees: FeePolicy = field(default_factory=FeePolicy)
    rollout: RolloutPolicy = field(default_factory=RolloutPolicy)
    notices: NoticePolicy = field(default_factory=NoticePolicy)
    swaps: SwapPolicy = field(default_factory=SwapPolicy)
    inbound: InboundPolicy = field(default_factory=InboundPolicy)
    maintenance: MaintenancePolicy = field(default_factory=MaintenancePolicy)
    source: str = "defaults"

    @classmethod
    def from_toml(cls, text: str, source: str = "policy") -> Policy:
        try:
            doc = load_toml(text)
        except DocumentError as exc:
            raise PolicyError(exc.message, where=source) from None
        built: dict[str, Any] = {}
        for name, value in doc.items():
            if name not in _SECTIONS:
                raise PolicyError(
                    f"unknown section (known: {', '.join(_SECTIONS)})", where=f"{source}: [{name}]"
                )
            if not isinstance(value, dict):
                raise PolicyError("must be a table", where=f"{source}: {name}")
            built[name] = _SECTIONS[name].from_table(value, source)
        return cls(**built, source=source)

    @classmethod
    def load(cls, path: Path | None = None) -> Policy:
        """The policy at ``path`` / ``POSFLEET_POLICY`` / ``./posfleet.toml``, or defaults."""
        env = os.environ.get("POSFLEET_POLICY")
        chosen = path or (Path(env) if env else None)
        if chosen is None and Path(DEFAULT_POLICY_FILE).is_file():
            chosen = Path(DEFAULT_POLICY_FILE)
        if chosen is None:
            return cls()
        try:
            text = read_text(chosen)
        except FileTextError as exc:
            raise PolicyError(exc.message, where=str(chosen)) from None
        return cls.from_toml(text, str(chosen))

    def to_toml(self) -> str:
        """The effective policy as TOML, every key written out, with its meaning."""
        lines = [f"# posfleet policy (from {self.source})"]
        for name in _SECTIONS:
            lines += ["", *getattr(self, name).toml_lines()]
        return "\n".join(lines) + "\n"
