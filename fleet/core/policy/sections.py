"""The policy's sections: each a frozen dataclass with its defaults, read from its TOML
table (:meth:`from_table`) and written back with every key and its meaning
(:meth:`toml_lines`). Pure.

Over 400 lines because it is declarations: one frozen dataclass per policy section, each
with its checks and the documented TOML it writes back.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Self

from fleet.core.policy.parsing import (
    PolicyError,
    clock_text,
    parse_clock_range,
    parse_waves,
    percent_ppm,
    ppm_text,
    seconds,
    span_seconds,
    span_text,
    toml_list,
    whole,
)
from fleet.core.values import parse_duration_days, parse_money

__all__ = [
    "CAPABILITIES",
    "FeePolicy",
    "MaintenancePolicy",
    "NoticePolicy",
    "ReplacementPolicy",
    "RolloutPolicy",
    "SwapPolicy",
]

CAPABILITIES = ("chip", "contactless", "magstripe", "qr", "pin_pad")


def _unknown(where: str, known: tuple[str, ...]) -> PolicyError:
    return PolicyError(f"unknown key (known: {', '.join(known)})", where=where)


def _in(source: str, exc: PolicyError) -> PolicyError:
    """A section's own check (``swaps.follow_up``), placed in its file."""
    return PolicyError(exc.message, where=f"{source}: {exc.where}" if exc.where else source)


def _days(raw: object, where: str) -> int:
    try:
        return parse_duration_days(str(raw))
    except ValueError as exc:
        raise PolicyError(str(exc), where=where) from None


_REPLACEMENT_DURATIONS = {"horizon": "horizon_days", "urgent_within": "urgent_days"}
"""TOML keys of ``[replacement]`` given as durations (``"180d"``) → the field in days."""


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
    wear_percent: int = 90
    """A reader, printer or battery past this share of its model's rated life (%) makes
    the terminal due now (P2); the forecast is the day its line reaches that share."""
    forecast_min_samples: int = 3
    """Health samples a wear forecast must rest on (fewer: no forecast)."""

    def __post_init__(self) -> None:
        for cap in self.require:
            if cap not in CAPABILITIES:
                raise PolicyError(
                    f"unknown capability {cap!r} (want {', '.join(CAPABILITIES)})",
                    where="replacement.require",
                )
        for status in self.statuses:
            if status not in ("in_stock", "deployed", "faulty"):
                raise PolicyError(
                    f"{status!r} (want in_stock, deployed, faulty)", where="replacement.statuses"
                )
        for name in ("max_age_years", "horizon_days", "urgent_days", "fault_threshold"):
            if getattr(self, name) < 0:
                raise PolicyError("must not be negative", where=f"replacement.{name}")
        if not 1 <= self.wear_percent <= 100:
            raise PolicyError("must be 1..100", where="replacement.wear_percent")
        if self.forecast_min_samples < 2:
            raise PolicyError(
                "must be 2 or more (a line needs two points)",
                where="replacement.forecast_min_samples",
            )

    @classmethod
    def from_table(cls, value: dict[str, Any], source: str) -> Self:
        known = {f.name: f for f in fields(cls)}
        durations = _REPLACEMENT_DURATIONS
        kwargs: dict[str, Any] = {}
        for key, raw in value.items():
            where = f"{source}: replacement.{key}"
            attr = durations.get(key, key)
            if attr not in known or (attr in durations.values() and key == attr):
                names = [k for k in [*known, *durations] if k not in durations.values()]
                raise _unknown(where, tuple(names))
            try:
                if key in durations:
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
                raise PolicyError(str(exc), where=where) from None
        try:
            return cls(**kwargs)
        except PolicyError as exc:
            raise _in(source, exc) from None

    def toml_lines(self) -> list[str]:
        return [
            "[replacement]",
            f"max_age_years = {self.max_age_years}  # years since manufacture",
            f'horizon = "{self.horizon_days}d"  # look-ahead for end-of-support and PTS expiry',
            f'urgent_within = "{self.urgent_days}d"  # replace-by this close makes it P2',
            f"statuses = {toml_list(self.statuses)}  # which terminals are considered",
            f"require = {toml_list(self.require)}  # capabilities every terminal must have",
            f"fault_threshold = {self.fault_threshold}  # faults at which a terminal is due",
            f"wear_percent = {self.wear_percent}  # % of rated life at which reader, printer or "
            "battery is due",
            f"forecast_min_samples = {self.forecast_min_samples}  # health samples a wear "
            "forecast rests on",
        ]


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

    @classmethod
    def from_table(cls, value: dict[str, Any], source: str) -> Self:
        known = ("notice_period", "basket", "test_amount", "test_card")
        kwargs: dict[str, Any] = {}
        for key, raw in value.items():
            where = f"{source}: fees.{key}"
            if key == "notice_period":
                kwargs["notice_days"] = _days(raw, where)
            elif key == "basket":
                kwargs["basket"] = _basket(raw, where)
            elif key in ("test_amount", "test_card"):
                if not isinstance(raw, str):
                    raise PolicyError("want a string", where=where)
                kwargs[key] = raw
            else:
                raise _unknown(where, known)
        return cls(**kwargs)

    def toml_lines(self) -> list[str]:
        basket = ", ".join(f'["{a}", "{c}"]' for a, c in self.basket)
        return [
            "[fees]",
            f'notice_period = "{self.notice_days}d"  # min. delay publication→effect of a raise',
            f"basket = [{basket}]  # typical sales (amount, card) a change is judged on",
            f'test_amount = "{self.test_amount}"  # the test sale that verifies a push',
            f'test_card = "{self.test_card}"',
        ]


def _basket(raw: object, where: str) -> tuple[tuple[str, str], ...]:
    items = []
    for entry in raw if isinstance(raw, list) else [None]:
        item = entry
        if isinstance(entry, dict) and set(entry) == {"amount", "card"}:
            item = [entry["amount"], entry["card"]]
        if not (
            isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)
        ):
            raise PolicyError('want [["25.00", "debit"], …]', where=where)
        items.append((item[0], item[1]))
    if not items:
        raise PolicyError("the basket is empty", where=where)
    return tuple(items)


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

    @classmethod
    def from_table(cls, value: dict[str, Any], source: str) -> Self:
        known = ("waves", "max_failures", "max_attempts", "backoff", "lease")
        kwargs: dict[str, Any] = {}
        for key, raw in value.items():
            where = f"{source}: rollout.{key}"
            if key == "waves":
                kwargs["waves"] = parse_waves(raw, where)
            elif key == "max_failures":
                kwargs["max_failure_ppm"] = percent_ppm(raw, where)
            elif key == "max_attempts":
                kwargs["max_attempts"] = whole(raw, where, 1)
            elif key == "backoff":
                kwargs["backoff_s"] = seconds(raw, where)
            elif key == "lease":
                kwargs["lease_s"] = max(1.0, seconds(raw, where))
            else:
                raise _unknown(where, known)
        return cls(**kwargs)

    def toml_lines(self) -> list[str]:
        waves = ", ".join(f'"{ppm_text(w)}"' for w in self.waves)
        return [
            "[rollout]",
            f"waves = [{waves}]  # cumulative share of terminals per wave",
            f'max_failures = "{ppm_text(self.max_failure_ppm)}"  # halt past this share failed',
            f"max_attempts = {self.max_attempts}  # per terminal, then the job fails",
            f'backoff = "{self.backoff_s:g}s"  # before retry n: backoff x 2^(n-1)',
            f'lease = "{self.lease_s:g}s"  # a dead worker\'s jobs are taken over after this',
        ]


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

    @classmethod
    def from_table(cls, value: dict[str, Any], source: str) -> Self:
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
                    raise PolicyError("want a non-empty string", where=where)
                kwargs[key] = raw.strip()
            elif key == "sms_signature":
                if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
                    raise PolicyError('want a table, e.g. { en = "[Acme]" }', where=where)
                kwargs[key] = tuple(sorted(raw.items()))
            elif key in ("max_per_window", "sms_max_segments", "max_attempts"):
                kwargs[key] = whole(raw, where, 1)
            elif key == "window":
                kwargs["window_s"] = max(1, span_seconds(raw, where))
            elif key == "digest_window":
                kwargs["digest_s"] = span_seconds(raw, where)
            elif key == "quiet_hours":
                kwargs["quiet"] = parse_clock_range(str(raw), where)
            elif key == "backoff":
                kwargs["backoff_s"] = seconds(raw, where)
            else:
                raise _unknown(where, known)
        policy = cls(**kwargs)
        try:
            parse_money(policy.sms_price, policy.sms_currency)
        except ValueError as exc:
            raise PolicyError(str(exc), where=f"{source}: notices.sms_price") from None
        return policy

    def toml_lines(self) -> list[str]:
        signatures = ", ".join(f'"{lang}" = "{sig}"' for lang, sig in self.sms_signature)
        quiet = f"{clock_text(self.quiet[0])}-{clock_text(self.quiet[1])}"
        return [
            "[notices]",
            f'company = "{self.company}"  # who notices are from, as the contract names it',
            f'hotline = "{self.hotline}"  # the official hotline (on the terminal and contract)',
            f"sms_signature = {{ {signatures} }}  # per language; counts in segments",
            f'email_from = "{self.email_from}"',
            f"max_per_window = {self.max_per_window}  # messages per merchant per channel…",
            f'window = "{span_text(self.window_s)}"  # …in any rolling window this long',
            f'quiet_hours = "{quiet}"  # merchant\'s local time: deferred, never dropped',
            f'digest_window = "{span_text(self.digest_s)}"  # notices this close: one digest',
            f'sms_price = "{self.sms_price}"  # per segment, in sms_currency',
            f'sms_currency = "{self.sms_currency}"',
            f"sms_max_segments = {self.sms_max_segments}  # a longer SMS is refused",
            f"max_attempts = {self.max_attempts}  # sends per message, then it fails",
            f'backoff = "{self.backoff_s:g}s"  # before retry n: backoff x 2^(n-1)',
        ]


@dataclass(frozen=True)
class SwapPolicy:
    """The replacement lifecycle around a swap."""

    advance_days: int = 3
    """A planned swap is announced at least this many days ahead (``swap plan``)."""
    follow_up_days: int = 7
    """The follow-up (回访) comes this many days after the swap…"""
    follow_up: str = "call"
    """…as a ``call`` task for the call centre or as a ``notice``."""
    follow_up_attempts: int = 3
    """A merchant not reached on the follow-up is tried this many times in all…"""
    follow_up_retry_days: int = 2
    """…each this many days after the last attempt."""

    def __post_init__(self) -> None:
        if self.follow_up not in ("call", "notice"):
            raise PolicyError(f"{self.follow_up!r} (want call or notice)", where="swaps.follow_up")
        if self.advance_days < 0 or self.follow_up_days < 0 or self.follow_up_retry_days < 0:
            raise PolicyError("days must not be negative", where="swaps")
        if not 1 <= self.follow_up_attempts <= 20:
            raise PolicyError(
                f"{self.follow_up_attempts} (want 1 to 20)", where="swaps.follow_up_attempts"
            )

    @classmethod
    def from_table(cls, value: dict[str, Any], source: str) -> Self:
        known = (
            "advance_notice", "follow_up_after", "follow_up", "follow_up_attempts",
            "follow_up_retry_after",
        )  # fmt: skip
        kwargs: dict[str, Any] = {}
        for key, raw in value.items():
            where = f"{source}: swaps.{key}"
            if key == "advance_notice":
                kwargs["advance_days"] = _days(raw, where)
            elif key == "follow_up_after":
                kwargs["follow_up_days"] = _days(raw, where)
            elif key == "follow_up":
                kwargs[key] = str(raw)
            elif key == "follow_up_retry_after":
                kwargs["follow_up_retry_days"] = _days(raw, where)
            elif key == "follow_up_attempts":
                if not isinstance(raw, int) or isinstance(raw, bool):
                    raise PolicyError(f"{raw!r} is not a whole number", where=where)
                kwargs[key] = raw
            else:
                raise _unknown(where, known)
        try:
            return cls(**kwargs)
        except PolicyError as exc:
            raise _in(source, exc) from None

    def toml_lines(self) -> list[str]:
        return [
            "[swaps]",
            f'advance_notice = "{self.advance_days}d"  # a planned swap is announced this early',
            f'follow_up_after = "{self.follow_up_days}d"  # the follow-up (回访) after a swap',
            f'follow_up = "{self.follow_up}"  # as a call task or a notice',
            f"follow_up_attempts = {self.follow_up_attempts}  # tries to reach the merchant",
            f'follow_up_retry_after = "{self.follow_up_retry_days}d"  # between the tries',
        ]


def _window(raw: object, where: str) -> tuple[int, int]:
    if not isinstance(raw, str):
        raise PolicyError('want "HH:MM-HH:MM", e.g. "01:00-05:00"', where=where)
    if raw.strip() in ("", "any"):
        return (0, 0)
    start, end = parse_clock_range(raw, where)
    if start == end:
        raise PolicyError(f"{raw!r} is empty (for no window, leave it out)", where=where)
    return start, end


def _window_text(window: tuple[int, int]) -> str:
    return "any" if window[0] == window[1] else f"{clock_text(window[0])}-{clock_text(window[1])}"


@dataclass(frozen=True)
class MaintenancePolicy:
    """When terminals may be pushed to: windows on the merchant's local clock (its
    ``timezone``), DST-aware. A merchant's own window wins, then the first group that
    includes it (in file order), then the default; ``"any"`` (the default): no window."""

    default: tuple[int, int] = (0, 0)
    """Minutes after local midnight (start, end); equal: any time."""
    groups: tuple[tuple[str, tuple[int, int]], ...] = ()
    """(group, window): ``region=east``, ``mcc=5411,5811-5814``, ``tag=vip`` (``;`` joins)."""
    merchants: tuple[tuple[str, tuple[int, int]], ...] = ()
    """(merchant id, window)."""

    @classmethod
    def from_table(cls, value: dict[str, Any], source: str) -> Self:
        known = ("default", "groups", "merchants")
        kwargs: dict[str, Any] = {}
        for key, raw in value.items():
            where = f"{source}: maintenance.{key}"
            if key == "default":
                kwargs["default"] = _window(raw, where)
            elif key in ("groups", "merchants"):
                if not isinstance(raw, dict):
                    raise PolicyError(
                        'want a table, e.g. { "region=east" = "02:00-04:00" }', where=where
                    )
                kwargs[key] = tuple((str(k), _window(v, f"{where}.{k}")) for k, v in raw.items())
            else:
                raise _unknown(where, known)
        return cls(**kwargs)

    def toml_lines(self) -> list[str]:
        lines = [
            "[maintenance]",
            f'default = "{_window_text(self.default)}"  # merchant\'s local time; "any": no window',
        ]
        if self.groups:
            inner = ", ".join(f'"{g}" = "{_window_text(w)}"' for g, w in self.groups)
            lines.append(f"groups = {{ {inner} }}  # first matching group wins")
        if self.merchants:
            inner = ", ".join(f'"{m}" = "{_window_text(w)}"' for m, w in self.merchants)
            lines.append(f"merchants = {{ {inner} }}  # a merchant's own window wins")
        return lines
