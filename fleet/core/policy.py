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
"""

from __future__ import annotations

import itertools
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from fleet.core.values import parse_duration_days, parse_money

__all__ = [
    "CAPABILITIES",
    "DEFAULT_POLICY_FILE",
    "FeePolicy",
    "NoticePolicy",
    "Policy",
    "PolicyError",
    "ReplacementPolicy",
    "RolloutPolicy",
    "SwapPolicy",
    "parse_clock_range",
    "parse_waves",
]

DEFAULT_POLICY_FILE = "posfleet.toml"
CAPABILITIES = ("chip", "contactless", "magstripe", "qr", "pin_pad")


class PolicyError(ValueError):
    """A policy file that can't be used; the message names the file and key."""


@dataclass(frozen=True)
class ReplacementPolicy:
    """When a terminal must be replaced (``posfleet replacements``)."""

    max_age_years: int = 7
    """A terminal older than this (from its manufacture date) is due."""
    horizon_days: int = 180
    """Look this far ahead for end-of-support and PTS expiry (``--horizon`` overrides)."""
    urgent_days: int = 90
    """A replace-by date within this many days makes the priority at least P2."""
    statuses: tuple[str, ...] = ("deployed", "faulty")
    """Which terminals are considered (swapped-out and retired ones never are)."""
    require: tuple[str, ...] = ("chip", "contactless")
    """Capabilities every terminal must have; a model without one is due."""
    fault_threshold: int = 5
    """This many recorded faults or more make a terminal due."""

    def __post_init__(self) -> None:
        for cap in self.require:
            if cap not in CAPABILITIES:
                raise PolicyError(
                    f"replacement.require: unknown capability {cap!r} "
                    f"(want {', '.join(CAPABILITIES)})"
                )
        for status in self.statuses:
            if status not in ("in_stock", "deployed", "faulty"):
                raise PolicyError(
                    f"replacement.statuses: {status!r} (want in_stock, deployed, faulty)"
                )
        for name in ("max_age_years", "horizon_days", "urgent_days", "fault_threshold"):
            if getattr(self, name) < 0:
                raise PolicyError(f"replacement.{name}: must not be negative")


_DURATIONS = {"horizon": "horizon_days", "urgent_within": "urgent_days"}


def _seconds(text: object, where: str) -> float:
    """``"30s"``, ``"2m"``, ``"500ms"``, ``"1h"`` or a number of seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        value = float(text)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", str(text))
        if not match:
            raise PolicyError(f"{where}: not a duration: {text!r} (e.g. 30s, 2m, 500ms)")
        value = (
            float(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match.group(2) or "s"]
        )
    if value < 0:
        raise PolicyError(f"{where}: must not be negative")
    return value


def percent_ppm(text: object, where: str) -> int:
    """``"5%"`` → 50000 ppm."""
    raw = str(text).strip()
    if not raw.endswith("%"):
        raise PolicyError(f'{where}: write a percentage, e.g. "5%"')
    try:
        ppm = Decimal(raw[:-1]) * 10_000
    except InvalidOperation:
        raise PolicyError(f"{where}: not a percentage: {text!r}") from None
    if not 0 <= ppm <= 1_000_000:
        raise PolicyError(f"{where}: {raw} is not between 0% and 100%")
    return int(ppm)


@dataclass(frozen=True)
class FeePolicy:
    """Publishing fee tables (``posfleet fees publish``)."""

    notice_days: int = 30
    """A table that raises any merchant's fee takes effect at least this long after it is
    published (90 for a bank's own rule, 60 under EU PSD2)."""
    basket: tuple[tuple[str, str], ...] = (
        ("25.00", "debit"),
        ("80.00", "credit"),
        ("300.00", "credit"),
        ("60.00", "qr_wallet"),
    )
    """The typical basket a fee change is judged on: (amount, card) sales."""
    test_amount: str = "100.00"
    test_card: str = "credit"
    """The test sale that verifies a push."""


@dataclass(frozen=True)
class RolloutPolicy:
    """Defaults of ``posfleet rollout create`` and its workers."""

    waves: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    """Cumulative share of terminals per wave, in ppm (1 %, 10 %, 100 %)."""
    max_failure_ppm: int = 50_000
    max_attempts: int = 5
    backoff_s: float = 5.0
    """Wait before retry n: backoff × 2^(n-1), capped at 10 minutes."""
    lease_s: float = 60.0
    """A claimed job is a worker's for this long; it renews while it works."""


@dataclass(frozen=True)
class NoticePolicy:
    """What merchant notices say and how often they may reach a merchant."""

    company: str = "posfleet Payments"
    """Who the notices are from, as the merchant's contract names it."""
    hotline: str = "+353 1 555 0100"
    """The official hotline, as printed on the terminal and the contract."""
    sms_signature: tuple[tuple[str, str], ...] = (("en", "[posfleet]"), ("zh-CN", "【posfleet】"))
    """Per language: the signature every SMS starts with (it counts towards segments)."""
    email_from: str = "notices@posfleet.example"
    max_per_window: int = 3
    """At most this many messages per merchant per channel in any rolling window…"""
    window_s: int = 7 * 86_400
    """…of this length."""
    quiet: tuple[int, int] = (21 * 60, 8 * 60)
    """Quiet hours in the merchant's time zone, minutes after midnight [start, end)."""
    digest_s: int = 15 * 60
    """A notice waits this long for others to the same merchant: together, one digest."""
    sms_price: str = "0.05"
    sms_currency: str = "EUR"
    """What one SMS segment costs (for the per-notice and per-batch cost)."""
    sms_max_segments: int = 3
    """An SMS longer than this is refused (``posfleet notices templates`` checks)."""
    max_attempts: int = 5
    backoff_s: float = 30.0
    """Wait before retry n of a failed send: backoff × 2^(n-1), capped at 1 hour."""

    def signature(self, language: str) -> str:
        table = dict(self.sms_signature)
        base = language.split("-", maxsplit=1)[0]
        return table.get(language) or table.get(base) or table.get("en", "")


@dataclass(frozen=True)
class SwapPolicy:
    """The replacement lifecycle around a swap."""

    advance_days: int = 3
    """A planned swap is announced at least this many days ahead (``swap plan``)."""
    follow_up_days: int = 7
    """The follow-up (回访) comes this many days after the swap…"""
    follow_up: str = "call"
    """…as a ``call`` task for the call centre or as a ``notice``."""

    def __post_init__(self) -> None:
        if self.follow_up not in ("call", "notice"):
            raise PolicyError(f"swaps.follow_up: {self.follow_up!r} (want call or notice)")
        if self.advance_days < 0 or self.follow_up_days < 0:
            raise PolicyError("swaps: days must not be negative")


@dataclass(frozen=True)
class Policy:
    replacement: ReplacementPolicy = field(default_factory=ReplacementPolicy)
    fees: FeePolicy = field(default_factory=FeePolicy)
    rollout: RolloutPolicy = field(default_factory=RolloutPolicy)
    notices: NoticePolicy = field(default_factory=NoticePolicy)
    swaps: SwapPolicy = field(default_factory=SwapPolicy)
    source: str = "defaults"

    @classmethod
    def from_toml(cls, text: str, source: str = "policy") -> Policy:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"{source}: not TOML: {exc}") from None
        built: dict[str, Any] = {}
        for name, value in doc.items():
            if name not in _SECTIONS:
                raise PolicyError(
                    f"{source}: [{name}]: unknown section (known: {', '.join(_SECTIONS)})"
                )
            if not isinstance(value, dict):
                raise PolicyError(f"{source}: {name}: must be a table")
            if name == "replacement":
                built[name] = _section(ReplacementPolicy, name, value, source)
            elif name == "fees":
                built[name] = _fees(value, source)
            elif name == "rollout":
                built[name] = _rollout(value, source)
            elif name == "notices":
                built[name] = _notices(value, source)
            else:
                built[name] = _swaps(value, source)
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
            text = chosen.read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(f"{chosen}: {exc.strerror}") from None
        return cls.from_toml(text, str(chosen))

    def to_toml(self) -> str:
        """The effective policy as TOML, every key written out, with its meaning."""
        lines = [f"# posfleet policy (from {self.source})", "", "[replacement]"]
        r = self.replacement
        lines += [
            f"max_age_years = {r.max_age_years}  # years since manufacture",
            f'horizon = "{r.horizon_days}d"  # look-ahead for end-of-support and PTS expiry',
            f'urgent_within = "{r.urgent_days}d"  # replace-by this close makes it P2',
            f"statuses = {_toml_list(r.statuses)}  # which terminals are considered",
            f"require = {_toml_list(r.require)}  # capabilities every terminal must have",
            f"fault_threshold = {r.fault_threshold}  # faults at which a terminal is due",
        ]
        f = self.fees
        basket = ", ".join(f'["{a}", "{c}"]' for a, c in f.basket)
        lines += [
            "",
            "[fees]",
            f'notice_period = "{f.notice_days}d"  # min. delay publication→effect of a raise',
            f"basket = [{basket}]  # typical sales (amount, card) a change is judged on",
            f'test_amount = "{f.test_amount}"  # the test sale that verifies a push',
            f'test_card = "{f.test_card}"',
        ]
        ro = self.rollout
        waves = ", ".join(f'"{_ppm_text(w)}"' for w in ro.waves)
        lines += [
            "",
            "[rollout]",
            f"waves = [{waves}]  # cumulative share of terminals per wave",
            f'max_failures = "{_ppm_text(ro.max_failure_ppm)}"  # halt past this share failed',
            f"max_attempts = {ro.max_attempts}  # per terminal, then the job fails",
            f'backoff = "{ro.backoff_s:g}s"  # before retry n: backoff x 2^(n-1)',
            f'lease = "{ro.lease_s:g}s"  # a dead worker\'s jobs are taken over after this',
        ]
        n = self.notices
        signatures = ", ".join(f'"{lang}" = "{sig}"' for lang, sig in n.sms_signature)
        lines += [
            "",
            "[notices]",
            f'company = "{n.company}"  # who notices are from, as the contract names it',
            f'hotline = "{n.hotline}"  # the official hotline (on the terminal and contract)',
            f"sms_signature = {{ {signatures} }}  # per language; counts in segments",
            f'email_from = "{n.email_from}"',
            f"max_per_window = {n.max_per_window}  # messages per merchant per channel…",
            f'window = "{_span(n.window_s)}"  # …in any rolling window this long',
            f'quiet_hours = "{_clock(n.quiet[0])}-{_clock(n.quiet[1])}"  # merchant\'s local '
            "time: deferred, never dropped",
            f'digest_window = "{_span(n.digest_s)}"  # notices this close: one digest',
            f'sms_price = "{n.sms_price}"  # per segment, in sms_currency',
            f'sms_currency = "{n.sms_currency}"',
            f"sms_max_segments = {n.sms_max_segments}  # a longer SMS is refused",
            f"max_attempts = {n.max_attempts}  # sends per message, then it fails",
            f'backoff = "{n.backoff_s:g}s"  # before retry n: backoff x 2^(n-1)',
        ]
        sw = self.swaps
        lines += [
            "",
            "[swaps]",
            f'advance_notice = "{sw.advance_days}d"  # a planned swap is announced this early',
            f'follow_up_after = "{sw.follow_up_days}d"  # the follow-up (回访) after a swap',
            f'follow_up = "{sw.follow_up}"  # as a call task or a notice',
        ]
        return "\n".join(lines) + "\n"


_SECTIONS = ("replacement", "fees", "rollout", "notices", "swaps")


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _span(seconds: int) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_clock_range(text: str, where: str = "quiet_hours") -> tuple[int, int]:
    """``"21:00-08:00"`` → minutes after midnight (start, end); the range may wrap midnight.

    >>> parse_clock_range("21:00-08:00")
    (1260, 480)
    >>> parse_clock_range("22:30-07")
    Traceback (most recent call last):
    fleet.core.policy.PolicyError: quiet_hours: want HH:MM-HH:MM, e.g. 21:00-08:00, not '22:30-07'
    """
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text)
    if not match:
        raise PolicyError(f"{where}: want HH:MM-HH:MM, e.g. 21:00-08:00, not {text!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise PolicyError(f"{where}: not a time of day in {text!r}")
    return h1 * 60 + m1, h2 * 60 + m2


def _span_seconds(raw: object, where: str) -> int:
    """``"7d"``, ``"24h"``, ``"15m"``, ``"30s"`` → seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([dhms])\s*", str(raw))
    if not match:
        raise PolicyError(f"{where}: want a duration like 7d, 24h, 15m or 30s, not {raw!r}")
    return int(match.group(1)) * {"d": 86_400, "h": 3600, "m": 60, "s": 1}[match.group(2)]


def _whole(raw: object, where: str, low: int = 0) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < low:
        raise PolicyError(f"{where}: want a whole number ≥ {low}")
    return raw


def _notices(value: dict[str, Any], source: str) -> NoticePolicy:
    known = (
        "company", "hotline", "sms_signature", "email_from", "max_per_window", "window",
        "quiet_hours", "digest_window", "sms_price", "sms_currency", "sms_max_segments",
        "max_attempts", "backoff",
    )  # fmt: skip
    kwargs: dict[str, Any] = {}
    for key, raw in value.items():
        where = f"{source}: notices.{key}"
        if key in ("company", "hotline", "email_from", "sms_price", "sms_currency"):
            if not isinstance(raw, str) or not raw.strip():
                raise PolicyError(f"{where}: want a non-empty string")
            kwargs[key] = raw.strip()
        elif key == "sms_signature":
            if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
                raise PolicyError(f'{where}: want a table, e.g. {{ en = "[Acme]" }}')
            kwargs[key] = tuple(sorted(raw.items()))
        elif key in ("max_per_window", "sms_max_segments", "max_attempts"):
            kwargs[key] = _whole(raw, where, 1)
        elif key == "window":
            kwargs["window_s"] = max(1, _span_seconds(raw, where))
        elif key == "digest_window":
            kwargs["digest_s"] = _span_seconds(raw, where)
        elif key == "quiet_hours":
            kwargs["quiet"] = parse_clock_range(str(raw), where)
        elif key == "backoff":
            kwargs["backoff_s"] = _seconds(raw, where)
        else:
            raise PolicyError(f"{where}: unknown key (known: {', '.join(known)})")
    policy = NoticePolicy(**kwargs)
    try:
        parse_money(policy.sms_price, policy.sms_currency)
    except ValueError as exc:
        raise PolicyError(f"{source}: notices.sms_price: {exc}") from None
    return policy


def _swaps(value: dict[str, Any], source: str) -> SwapPolicy:
    known = ("advance_notice", "follow_up_after", "follow_up")
    kwargs: dict[str, Any] = {}
    for key, raw in value.items():
        where = f"{source}: swaps.{key}"
        if key in ("advance_notice", "follow_up_after"):
            try:
                days = parse_duration_days(str(raw))
            except ValueError as exc:
                raise PolicyError(f"{where}: {exc}") from None
            kwargs["advance_days" if key == "advance_notice" else "follow_up_days"] = days
        elif key == "follow_up":
            kwargs[key] = str(raw)
        else:
            raise PolicyError(f"{where}: unknown key (known: {', '.join(known)})")
    try:
        return SwapPolicy(**kwargs)
    except PolicyError as exc:
        raise PolicyError(f"{source}: {exc}") from None


def _ppm_text(ppm: int) -> str:
    return f"{ppm / 10_000:g}%"


def _fees(value: dict[str, Any], source: str) -> FeePolicy:
    known = ("notice_period", "basket", "test_amount", "test_card")
    kwargs: dict[str, Any] = {}
    for key, raw in value.items():
        where = f"{source}: fees.{key}"
        if key == "notice_period":
            try:
                kwargs["notice_days"] = parse_duration_days(str(raw))
            except ValueError as exc:
                raise PolicyError(f"{where}: {exc}") from None
        elif key == "basket":
            items = []
            for entry in raw if isinstance(raw, list) else [None]:
                item = entry
                if isinstance(entry, dict) and set(entry) == {"amount", "card"}:
                    item = [entry["amount"], entry["card"]]
                if not (
                    isinstance(item, list)
                    and len(item) == 2
                    and all(isinstance(x, str) for x in item)
                ):
                    raise PolicyError(f'{where}: want [["25.00", "debit"], …]')
                items.append((item[0], item[1]))
            if not items:
                raise PolicyError(f"{where}: the basket is empty")
            kwargs["basket"] = tuple(items)
        elif key in ("test_amount", "test_card"):
            if not isinstance(raw, str):
                raise PolicyError(f"{where}: want a string")
            kwargs[key] = raw
        else:
            raise PolicyError(f"{where}: unknown key (known: {', '.join(known)})")
    return FeePolicy(**kwargs)


def _rollout(value: dict[str, Any], source: str) -> RolloutPolicy:
    known = ("waves", "max_failures", "max_attempts", "backoff", "lease")
    kwargs: dict[str, Any] = {}
    for key, raw in value.items():
        where = f"{source}: rollout.{key}"
        if key == "waves":
            kwargs["waves"] = parse_waves(raw, where)
        elif key == "max_failures":
            kwargs["max_failure_ppm"] = percent_ppm(raw, where)
        elif key == "max_attempts":
            if not isinstance(raw, int) or isinstance(raw, bool) or raw < 1:
                raise PolicyError(f"{where}: want a whole number ≥ 1")
            kwargs["max_attempts"] = raw
        elif key == "backoff":
            kwargs["backoff_s"] = _seconds(raw, where)
        elif key == "lease":
            kwargs["lease_s"] = max(1.0, _seconds(raw, where))
        else:
            raise PolicyError(f"{where}: unknown key (known: {', '.join(known)})")
    return RolloutPolicy(**kwargs)


def parse_waves(raw: object, where: str = "waves") -> tuple[int, ...]:
    """``"1%,10%,100%"`` or ``["1%", "10%", "100%"]`` → cumulative ppm, ending at 100 %.

    >>> parse_waves("1%,10%,100%")
    (10000, 100000, 1000000)
    """
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple) or not items:
        raise PolicyError(f"{where}: want e.g. 1%,10%,100%")
    waves = tuple(percent_ppm(i, where) for i in items)
    if any(b <= a for a, b in itertools.pairwise(waves)) or waves[0] <= 0:
        raise PolicyError(f"{where}: waves must grow: {', '.join(map(str, items))}")
    if waves[-1] != 1_000_000:
        raise PolicyError(f"{where}: the last wave must be 100%")
    return waves


def _toml_list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"


def _section(kind: type[Any], name: str, value: dict[str, Any], source: str) -> Any:
    known = {f.name: f for f in fields(kind)}
    kwargs: dict[str, Any] = {}
    for key, raw in value.items():
        attr = _DURATIONS.get(key, key)
        if attr not in known or (attr in _DURATIONS.values() and key == attr):
            names = [k for k in [*known, *_DURATIONS] if k not in _DURATIONS.values()]
            raise PolicyError(f"{source}: {name}.{key}: unknown key (known: {', '.join(names)})")
        try:
            if key in _DURATIONS:
                kwargs[attr] = parse_duration_days(str(raw))
            elif isinstance(known[attr].default, tuple):
                if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
                    raise ValueError("must be a list of strings")
                kwargs[attr] = tuple(raw)
            elif isinstance(known[attr].default, int):
                if not isinstance(raw, int) or isinstance(raw, bool):
                    raise ValueError("must be a whole number")
                kwargs[attr] = raw
            else:
                kwargs[attr] = raw
        except ValueError as exc:
            raise PolicyError(f"{source}: {name}.{key}: {exc}") from None
    try:
        return kind(**kwargs)
    except PolicyError as exc:
        raise PolicyError(f"{source}: {exc}") from None
