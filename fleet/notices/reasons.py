"""Reasons a merchant reads: the one catalogue of reason codes, each worded in every
template language. Pure.

A swap or a fee change carries a **reason code**; the notice renders the catalogue's text
in the merchant's language. What an operator types (``--reason`` / ``--note``) stays in
the record and the audit log and is never put into an SMS or an email: a merchant reads
only text that is written here, checked like the templates (no link, no request for a
secret, :func:`check_catalogue`).

>>> reason_text("pci_expiry", "zh-CN"), reason_text("pci_expiry", "en")
('终端安全认证（PCI PTS）即将到期', 'the security approval (PCI PTS) of the terminal is expiring')
>>> reason_code("PCI-Expiry")
'pci_expiry'
>>> reason_code("because")
Traceback (most recent call last):
...
fleet.notices.reasons.ReasonCodeError: reason code: 'because' is not a reason code (one of \
age, pci_expiry, model_eol, firmware_eol, security_advisory, missing_payment_method, faulty, \
tamper, wear, upgrade, merchant_request, fee_review, scheme_fees, cost_change, other)
>>> default_swap_code(["age", "pts"], status="deployed")
'pci_expiry'
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from fleet.core.errors import InputError

__all__ = [
    "CATALOGUE",
    "FEE_CODES",
    "SWAP_CODES",
    "ReasonCodeError",
    "check_catalogue",
    "default_swap_code",
    "reason_code",
    "reason_text",
]

CATALOGUE: Final[dict[str, dict[str, str]]] = {
    # swaps
    "age": {
        "en": "the terminal has reached the end of its service life",
        "zh-CN": "终端已达到使用年限",
    },
    "pci_expiry": {
        "en": "the security approval (PCI PTS) of the terminal is expiring",
        "zh-CN": "终端安全认证（PCI PTS）即将到期",
    },
    "model_eol": {
        "en": "the terminal model is no longer supported by its maker",
        "zh-CN": "该终端型号已停止厂商支持",
    },
    "firmware_eol": {
        "en": "the terminal software is no longer supported",
        "zh-CN": "终端软件已停止支持",
    },
    "security_advisory": {
        "en": "a security fix the terminal cannot take",
        "zh-CN": "终端无法安装必要的安全更新",
    },
    "missing_payment_method": {
        "en": "the terminal cannot take a payment method you need",
        "zh-CN": "终端不支持您需要的支付方式",
    },
    "faulty": {"en": "the terminal is faulty", "zh-CN": "终端出现故障"},
    "tamper": {
        "en": "the terminal may have been tampered with",
        "zh-CN": "终端可能被改动，需要安全检查",
    },
    "wear": {"en": "the terminal is worn", "zh-CN": "终端磨损"},
    "upgrade": {"en": "an upgrade to a newer terminal", "zh-CN": "升级为新型终端"},
    "merchant_request": {"en": "at your request", "zh-CN": "应您的要求"},
    # fee changes
    "fee_review": {"en": "our periodic fee review", "zh-CN": "定期费率调整"},
    "scheme_fees": {
        "en": "a change in card scheme fees",
        "zh-CN": "银行卡组织收费调整",
    },
    "cost_change": {"en": "a change in our processing costs", "zh-CN": "处理成本变化"},
    "other": {"en": "service to your terminal", "zh-CN": "终端服务需要"},
}
"""Reason code → template language → the text a merchant reads (a phrase, no full stop)."""

SWAP_CODES: Final = (
    "age", "pci_expiry", "model_eol", "firmware_eol", "security_advisory",
    "missing_payment_method", "faulty", "tamper", "wear", "upgrade", "merchant_request",
    "other",
)  # fmt: skip
FEE_CODES: Final = ("fee_review", "scheme_fees", "cost_change", "other")

_FROM_REPLACEMENT: Final = {
    "key": "tamper",
    "advisory": "security_advisory",
    "pts": "pci_expiry",
    "model-eos": "model_eol",
    "firmware-eos": "firmware_eol",
    "capability": "missing_payment_method",
    "faults": "faulty",
    "age": "age",
}
"""Replacement rule (:data:`fleet.replacements.REASONS`) → reason code, most pressing
first: a terminal flagged for several takes the first that applies."""


class ReasonCodeError(InputError):
    """Not a reason code of the catalogue."""


def reason_code(value: str, *, allowed: Iterable[str] | None = None) -> str:
    """``value`` as a catalogue code (case, dashes and spaces forgiven), or
    :class:`ReasonCodeError` listing the codes (``allowed``: of a kind of notice)."""
    code = value.strip().lower().replace("-", "_").replace(" ", "_")
    codes = tuple(allowed) if allowed is not None else tuple(CATALOGUE)
    if code not in codes:
        raise ReasonCodeError(
            f"{value!r} is not a reason code (one of {', '.join(codes)})", where="reason code"
        )
    return code


def reason_text(code: str | None, language: str) -> str:
    """The catalogue's text of ``code`` in ``language`` (``en`` or ``zh-CN``); an unknown or
    missing code (a notice stored before the catalogue) reads as ``other``."""
    texts = CATALOGUE.get(code or "", CATALOGUE["other"])
    return texts.get(language, texts["en"])


def default_swap_code(replacement_reasons: Iterable[str], *, status: str = "") -> str:
    """The reason code of a swap nobody gave one: the terminal's most pressing replacement
    reason; ``faulty`` for a faulty terminal flagged for nothing; else ``other``."""
    flagged = set(replacement_reasons)
    for rule, code in _FROM_REPLACEMENT.items():
        if rule in flagged:
            return code
    return "faulty" if status == "faulty" else "other"


def check_catalogue() -> list[str]:
    """Problems of the catalogue: a code without a language, or text a merchant must not
    read (:func:`fleet.notices.content.forbidden`)."""
    from fleet.notices.content import forbidden  # noqa: PLC0415

    problems = []
    for code, texts in CATALOGUE.items():
        for language in ("en", "zh-CN"):
            text = texts.get(language)
            if not text:
                problems.append(f"{code}: no {language} text")
            elif problem := forbidden(text):
                problems.append(f"{code}.{language}: contains {problem}")
    return problems
