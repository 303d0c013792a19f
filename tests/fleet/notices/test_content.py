"""The content check's fast path (lowered text, words first) finds exactly what the
case-insensitive patterns find, where they find it."""

from __future__ import annotations

import random
import re

from fleet.core.policy import NoticePolicy
from fleet.notices.content import _FOLD, _URL_TAIL, FORBIDDEN, forbidden
from fleet.notices.text import KINDS, LANGUAGES, render, sample_items

_PIECES = [
    "Visit ", "https://pay.example.com", "HTTP://X.IO/a?b=1", "www.", "WWW.", "pay.example.COM",
    "shop.cn", "a-b.me.", "Click here", "TAP the link", "fOlLoW this link", "open here",
    "Reply", "with your", "CARD", "pin", "PassCode", "one-time", "OTP", "cvv", "CvC", "code",
    "Tell us", "verify", "type back", "text back", "send", "enter", "provide", "confirm",
    "请点击", "打开这个链接", "链接：", "网址:", "回复您的卡号", "提供验证码", "输入密码", "告诉我们验证码",
    ". ", "。", " ", "\n", ", ", "x" * 30, "\u0130", "\u0131", "\u017f", "\u212a", "ſend",
    "Reply with your \u212aard", "\u0130NFO", "é", "ÉCOLE", "ß", "ΣΑΣ", "7KQ2M-9XWWW.",
]  # fmt: skip


def _reference(text: str) -> str | None:
    """The check as the case-insensitive patterns alone make it, on the text as it is."""
    for pattern, what in FORBIDDEN:
        found = pattern.search(text)
        if found:
            start, end = found.span()
            if what == "a URL":
                tail = _URL_TAIL.match(text, end)
                end = tail.end() if tail else end
                while end > start + 1 and text[end - 1] in ".,;:?!":
                    end -= 1
            return f"{what}: {text[start:end][:80]!r}"
    return None


def test_the_fast_check_agrees_with_the_patterns_on_random_texts() -> None:
    rng = random.Random(18)
    for _ in range(4000):
        text = "".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 12)))
        assert forbidden(text) == _reference(text), text


def test_the_fast_check_agrees_on_every_template() -> None:
    policy = NoticePolicy()
    for kind in KINDS:
        for lang in LANGUAGES:
            for channel in ("sms", "email", "call"):
                out = render(
                    sample_items(kind), channel=channel, language=lang, zone="Europe/Dublin",
                    merchant="Merchant", code="7KQ2M-9XD4T", policy=policy,
                )  # fmt: skip
                for text in (f"{out.subject}\n{out.body}", out.body + " Reply with your PIN"):
                    assert forbidden(text) == _reference(text)


def test_only_the_folded_characters_read_as_ascii_letters_case_insensitively() -> None:
    letters = re.compile("(?i)[a-z]")
    found = {
        chr(c) for c in range(0x80, 0x110000) if c < 0xD800 or c > 0xDFFF
        if letters.fullmatch(chr(c))
    }  # fmt: skip
    assert found == {chr(c) for c in _FOLD}
