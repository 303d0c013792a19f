"""The ``[inbound]`` policy section: what closes the loop after a notice is sent —
how long an SMS may go without a delivery receipt, which replies mean what, and when the
scam radar raises its alert. Pure.

>>> p = InboundPolicy.from_table({"stop_words": {"en": ["STOP", "END"]}}, "t")
>>> p.stop_words_for("en"), p.stop_words_for("zh-CN")
(('END', 'STOP'), ('T', 'TD', '退订'))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from fleet.core.policy.parsing import PolicyError, span_seconds, span_text, whole

__all__ = ["InboundPolicy"]

_DEFAULT_STOP = (("en", ("STOP", "UNSUBSCRIBE")), ("zh-CN", ("T", "TD", "退订")))


@dataclass(frozen=True)
class InboundPolicy:
    receipt_window_s: int = 2 * 3600
    """An SMS with no final receipt this long after it was sent falls back to the next
    channel (email, then a call task)."""
    stop_words: tuple[tuple[str, tuple[str, ...]], ...] = _DEFAULT_STOP
    """Per language, the replies that opt the merchant out of SMS (whole reply, any case;
    a language the policy does not name keeps these defaults)."""
    confirm: str = "1"
    """The reply that confirms a planned swap's date."""
    reschedule: str = "2"
    """The reply that asks to reschedule a planned swap (a call task)."""
    scam_threshold: int = 5
    """NOT GENUINE verifications plus scam complaints per region and day that raise the
    alert in ``posfleet report scams``."""

    def stop_words_for(self, language: str) -> tuple[str, ...]:
        table = dict(self.stop_words)
        return table.get(language) or table.get(language.split("-", maxsplit=1)[0], ())

    def all_stop_words(self) -> frozenset[str]:
        """Every language's stop words, upper-cased (a merchant may answer in either)."""
        return frozenset(w.upper() for _, words in self.stop_words for w in words)

    @classmethod
    def from_table(cls, value: dict[str, Any], source: str) -> Self:
        known = ("receipt_window", "stop_words", "confirm", "reschedule", "scam_threshold")
        kwargs: dict[str, Any] = {}
        for key, raw in value.items():
            where = f"{source}: inbound.{key}"
            if key == "receipt_window":
                kwargs["receipt_window_s"] = max(1, span_seconds(raw, where))
            elif key == "stop_words":
                if not isinstance(raw, dict) or not all(
                    isinstance(v, list) and v and all(isinstance(w, str) and w.strip() for w in v)
                    for v in raw.values()
                ):
                    raise PolicyError('want a table of lists, e.g. { en = ["STOP"] }', where=where)
                table = dict(_DEFAULT_STOP)  # a language not given keeps its defaults
                table.update(
                    (lang, tuple(sorted(w.strip() for w in words))) for lang, words in raw.items()
                )
                kwargs[key] = tuple(sorted(table.items()))

            elif key in ("confirm", "reschedule"):
                if not isinstance(raw, str) or not raw.strip():
                    raise PolicyError("want a non-empty string", where=where)
                kwargs[key] = raw.strip()
            elif key == "scam_threshold":
                kwargs[key] = whole(raw, where, 1)
            else:
                raise PolicyError(f"unknown key (known: {', '.join(known)})", where=where)
        policy = cls(**kwargs)
        if policy.confirm.upper() == policy.reschedule.upper():
            raise PolicyError("confirm and reschedule must differ", where=f"{source}: inbound")
        return policy

    def toml_lines(self) -> list[str]:
        words = ", ".join(
            f'"{lang}" = [{", ".join(chr(34) + w + chr(34) for w in ws)}]'
            for lang, ws in self.stop_words
        )
        return [
            "[inbound]",
            f'receipt_window = "{span_text(self.receipt_window_s)}"  # no SMS receipt this '
            "long: fall back to email, then a call task",
            f"stop_words = {{ {words} }}  # replies that opt out of SMS",
            f'confirm = "{self.confirm}"  # confirms a planned swap\'s date',
            f'reschedule = "{self.reschedule}"  # asks to reschedule it (a call task)',
            f"scam_threshold = {self.scam_threshold}  # per region and day: the scam alert",
        ]
