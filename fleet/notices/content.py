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


class ContentError(InputError):
    """Text meant for a merchant holds a link or asks for a secret."""


def forbidden(text: str) -> str | None:
    """What ``text`` holds that a merchant message must not (``"a URL: 'www.x.com'"``), or
    None."""
    for pattern, what in FORBIDDEN:
        found = pattern.search(text)
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
