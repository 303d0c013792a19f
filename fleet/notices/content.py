"""What a message to a merchant must never contain: a link, or a request for a card number,
a password or a code. Pure; the one list of rules (:data:`FORBIDDEN`), applied

* to the templates, rendered with sample values (:func:`fleet.notices.text.check_templates`);
* to operator text before a notice carrying it is queued (:func:`check_payload`: a swap
  whose reason holds a URL is refused at the swap, in one line, and nothing is written);
* to every composed message, subject and body, before it is stored
  (:mod:`fleet.notices.compose`: a message that fails is not stored, its notice fails with
  the reason).

>>> forbidden("Call us, or see www.example.com")
"a URL: 'www.example.com'"
>>> forbidden("Reply with your PIN to confirm"), forbidden("Your terminal was swapped.")
("a request for a card number, password or code: 'Reply with your PIN'", None)
>>> check_payload({"reason": "worn; details at http://evil.example", "old": "PS1"}, "swap")
Traceback (most recent call last):
...
fleet.notices.content.ContentError: swap: reason: contains a URL: 'http://evil.example' (a \
notice to a merchant never carries a link nor asks for a secret)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fleet.core.errors import InputError

__all__ = ["FORBIDDEN", "ContentError", "check_payload", "forbidden"]

FORBIDDEN = [
    (re.compile(r"(?i)\b(?:https?|ftp)://|www\.|\b[a-z0-9-]+\.(?:com|cn|net|org|io|ly|me)\b"),
     "a URL"),
    (re.compile(r"(?i)\b(?:click|tap|follow|open) (?:the |this )?(?:link|here)"),
     "a link to click"),
    (re.compile(r"(?i)\b(?:reply|respond|text back|send|enter|type|provide|confirm|verify|tell)"
                r"\b[^.。]{0,40}\b(?:card|pin|password|passcode|otp|one-time|code|cvv|cvc)"),
     "a request for a card number, password or code"),
    (re.compile(r"点击|打开[^。]{0,6}链接|(?:链接|网址)[:：]|回复[^。]{0,10}(?:卡号|密码|验证码)|提供[^。]{0,10}(?:卡号|密码|验证码)|"
                r"输入[^。]{0,10}(?:卡号|密码|验证码)|告诉[^。]{0,10}(?:卡号|密码|验证码)"),
     "a link or a request for a card number, password or code"),
]  # fmt: skip
"""(pattern, what it finds): what a message to a merchant must never contain."""


_URL_TAIL = re.compile(r"[A-Za-z0-9._~:/?#@!$&*+=%-]*")

_FOLD = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})
"""The only characters outside ASCII that a case-insensitive pattern reads as an ASCII
letter (İ, ı, ſ and the Kelvin sign; a test checks every code point). Folded to it, then
lowered, a text keeps its length (``str.lower`` lengthens only İ), so a match in the
lowered text is the same match, at the same place, as the pattern's own."""

_LOWERED = [re.compile(p.pattern.removeprefix("(?i)")) for p, _ in FORBIDDEN]
""":data:`FORBIDDEN` without ``(?i)``, for the lowered text: the same matches, about
three times faster than matching case-insensitively."""

_TLD = re.compile(r"\.(?:com|cn|net|org|io|ly|me)")

_STARTS: list[tuple[str, ...] | None] = [
    None,  # a URL: see _may_hold_url
    ("click ", "tap ", "follow ", "open "),
    ("reply", "respond", "text back", "send", "enter", "type", "provide", "confirm", "verify",
     "tell"),
    ("点击", "打开", "链接", "网址", "回复", "提供", "输入", "告诉"),
]  # fmt: skip
"""Per pattern of :data:`FORBIDDEN` after the first: the words every match starts with.
Such a pattern is tried only where one of them stands in the lowered text (leftmost
first), the same first match as searching the whole text, at a fraction of the cost."""


def _may_hold_url(low: str) -> bool:
    """Whether the first pattern (a URL) can match at all: every match holds ``://``,
    ``www.`` or a dot and one of its top-level domains."""
    return "://" in low or "www." in low or _TLD.search(low) is not None


def _first(pattern: re.Pattern[str], low: str, starts: tuple[str, ...]) -> re.Match[str] | None:
    """``pattern.search(low)``, trying only where a word of ``starts`` stands."""
    at = []
    for word in starts:
        i = low.find(word)
        while i >= 0:
            at.append(i)
            i = low.find(word, i + 1)
    for i in sorted(at):
        found = pattern.match(low, i)  # its \b still sees the character before i
        if found:
            return found
    return None


class ContentError(InputError):
    """Text meant for a merchant holds a link or asks for a secret."""


def forbidden(text: str) -> str | None:
    """What ``text`` holds that a merchant message must not (``"a URL: 'www.x.com'"``), or
    None."""
    folds = not text.isascii() and any(c in text for c in "\u0130\u0131\u017f\u212a")
    low = (text.translate(_FOLD) if folds else text).lower()  # translate is slow: if needed
    for (_, what), lowered, starts in zip(FORBIDDEN, _LOWERED, _STARTS, strict=True):
        if starts is None:
            found = lowered.search(low) if _may_hold_url(low) else None
        else:
            found = _first(lowered, low, starts)
        if found:
            start, end = found.span()
            if what == "a URL":  # the whole address, as far as it goes
                tail = _URL_TAIL.match(text, end)
                end = tail.end() if tail else end
                while end > start + 1 and text[end - 1] in ".,;:?!":
                    end -= 1
            return f"{what}: {text[start:end][:80]!r}"
    return None


def check_payload(payload: Mapping[str, Any], where: str) -> None:
    """Refuse a notice payload whose text (a reason, an engineer's name…) a merchant must
    not read: :class:`ContentError` naming the field."""
    for key, value in payload.items():
        if isinstance(value, str) and (problem := forbidden(value)):
            raise ContentError(
                f"{key}: contains {problem} (a notice to a merchant never carries a link nor "
                "asks for a secret)",
                where=where,
            )
