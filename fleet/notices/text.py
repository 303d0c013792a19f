"""What a merchant notice says: Jinja2 templates per kind × language × channel.

``fleet/notices/templates/{kind}.{language}.{channel}.j2`` says what one notice is about
(its first line is the title, the rest the body); ``frame.{language}.{channel}.j2`` wraps
one notice — or several, as a digest — with the company, the official hotline, the
verification code and the promise that we never ask for card numbers, passwords or codes.
Undefined variables are errors (``StrictUndefined``). Templates never hold a URL and never
ask for anything: :func:`check_templates` renders every one and enforces that, and that
every SMS fits the policy's segment limit.

Values reach the templates already worded (dates in the merchant's time zone and
language, money with its currency), so templates hold no logic but the digest loop.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError

from fleet.core.money import format_minor
from fleet.core.policy import NoticePolicy
from fleet.notices.content import FORBIDDEN, forbidden
from fleet.notices.payloads import KINDS, FeeChange, LoopNotice, payload_of
from fleet.notices.reasons import CATALOGUE, FEE_CODES, SWAP_CODES, reason_text
from fleet.notices.sms import SmsCount, count

__all__ = [
    "CHANNELS",
    "FORBIDDEN",
    "KINDS",
    "LANGUAGES",
    "NoticeItem",
    "Rendered",
    "TemplateProblem",
    "check_templates",
    "context",
    "render",
    "sample_items",
    "template_language",
]

LANGUAGES = ("en", "zh-CN")
CHANNELS = ("sms", "email", "call")
TEMPLATES = Path(__file__).parent / "templates"

_ENV = Environment(
    loader=FileSystemLoader(TEMPLATES),
    undefined=StrictUndefined,
    autoescape=False,  # plain text: SMS, text/plain email, call scripts
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=False,
    auto_reload=False,  # files of the package: no stat of each on every render
)

_NEVER_ASK = {"en": "We never ask for card numbers, passwords or", "zh-CN": "我们绝不会"}


def template_language(language: str) -> str:
    """The template language for a merchant's language (``zh-Hans-CN`` → ``zh-CN``)."""
    if language in LANGUAGES:
        return language
    return "zh-CN" if language.lower().startswith("zh") else "en"


@dataclass(frozen=True, slots=True)
class NoticeItem:
    """One notice, as a message carries it."""

    kind: str
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    body: str
    sms: SmsCount | None


def _date(value: date | datetime | str, language: str, zone: str, *, clock: bool) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
    if isinstance(value, datetime):
        local = value.astimezone(ZoneInfo(zone))
        day: date = local.date()
        hhmm = f" {local:%H:%M}" if clock else ""
    else:
        day, hhmm = value, ""
    if language == "zh-CN":
        return f"{day.year}年{day.month}月{day.day}日{hhmm}"
    return f"{day.day} {day:%b} {day.year}{hhmm}"


def _money(minor: int | None, currency: str, language: str) -> str:
    if minor is None:
        return "无" if language == "zh-CN" else "none"
    return f"{format_minor(minor, currency)} {currency}"


def context(item: NoticeItem, *, language: str, zone: str, policy: NoticePolicy) -> dict[str, Any]:
    """The worded values one kind's template uses (missing payload keys are errors)."""
    p = payload_of(item.kind, item.payload)
    lang = template_language(language)
    zh = lang == "zh-CN"
    if isinstance(p, FeeChange):
        old, new = p.basket_old, p.basket_new
        if old is None:
            change = "新费率" if zh else "a new table"
        else:
            delta = new - old
            sign = "+" if delta > 0 else "-" if delta < 0 else "±"
            change = f"{sign}{format_minor(abs(delta), p.currency)} {p.currency}"
        return {
            "version": p.version,
            "effective": _date(p.effective, lang, zone, clock=True),
            "zone": zone,
            "reason": reason_text(p.reason_code, lang),
            "sales": p.sales,
            "basket_total": _money(p.basket_total, p.currency, lang),
            "before": _money(old, p.currency, lang),
            "after": _money(new, p.currency, lang),
            "change": change,
        }
    if isinstance(p, LoopNotice):
        return {"region": p.region or ("您所在地区" if zh else "your area")}
    return {
        "old": p.old,
        "new": p.new or ("待定" if zh else "to be chosen"),
        "model": p.model or "",
        "tid": p.tid,
        "date": _date(p.date, lang, zone, clock=False),
        "reason": reason_text(p.reason_code, lang),
        "engineer": p.engineer,
        "version": p.version or ("无" if zh else "none"),
    }


_SECTIONS: dict[tuple[Any, ...], tuple[str, str, NoticePolicy]] = {}
"""Rendered sections (title, body) by kind, channel, language, zone, payload (its
``repr``: JSON values) and policy:
a fee change sends one section to thousands of merchants, each message differs only in
its frame (name, code). Bounded; the policy is kept with its entries, so its ``id``
cannot be reused while they are."""


def _section(
    item: NoticeItem, *, channel: str, language: str, zone: str, policy: NoticePolicy
) -> tuple[str, str]:
    key = (item.kind, channel, language, zone, id(policy), repr(item.payload))
    hit = _SECTIONS.get(key) if type(item.payload) is dict else None  # a dict's repr is it
    if hit is not None:
        return hit[0], hit[1]
    text = _ENV.get_template(f"{item.kind}.{language}.{channel}.j2").render(
        context(item, language=language, zone=zone, policy=policy)
    )
    title, _, body = text.strip().partition("\n")
    if type(item.payload) is dict:
        if len(_SECTIONS) >= 4096:
            _SECTIONS.clear()
        _SECTIONS[key] = (title.strip(), body.strip() or title, policy)
    return title.strip(), body.strip() or title


def render(
    items: Sequence[NoticeItem],
    *,
    channel: str,
    language: str,
    zone: str,
    merchant: str,
    code: str,
    policy: NoticePolicy,
) -> Rendered:
    """One message: the frame around each item's section. Raises ``TemplateError``."""
    lang = template_language(language)
    sections = []
    for item in items:
        title, body = _section(item, channel=channel, language=lang, zone=zone, policy=policy)
        sections.append({"kind": item.kind, "title": title, "body": body})
    if channel in ("sms", "call"):  # a one-line section: its body is the whole of it
        for section in sections:
            section["body"] = section["title"]
    frame = _ENV.get_template(f"frame.{lang}.{channel}.j2").render(
        items=sections,
        merchant=merchant,
        code=code,
        company=policy.company,
        hotline=policy.hotline,
        signature=policy.signature(lang),
    )
    subject = ""
    if channel == "email":
        first, _, rest = frame.partition("\n")
        if not first.startswith("Subject: "):
            raise TemplateError(f"frame.{lang}.email.j2 must start with 'Subject: '")
        subject, frame = first.removeprefix("Subject: ").strip(), rest.lstrip("\n")
    if channel == "sms":
        frame = re.sub(r"\s+", " ", frame).strip()
    return Rendered(subject, frame, count(frame) if channel == "sms" else None)


def _longest(codes: Sequence[str]) -> str:
    """The code whose text is longest in any language: what a template check renders."""
    return max(codes, key=lambda c: max(len(t.encode()) for t in CATALOGUE[c].values()))


def sample_items(kind: str) -> list[NoticeItem]:
    """Long but realistic payloads of ``kind``: what template checks render."""
    if kind == "fee_change":
        payload: dict[str, Any] = {
            "version": 12345, "old_version": 12344, "effective": "2027-12-31T00:00:00+08:00",
            "currency": "EUR", "basket_old": 1_234_567, "basket_new": 1_334_567,
            "direction": "up", "reason_code": _longest(FEE_CODES),
            "sales": 4, "basket_total": 46_500,
        }  # fmt: skip
    elif kind in ("scam_warning", "opt_out_confirm"):
        payload = {"region": "Region name of forty characters, long!!"}
    else:
        payload = {
            "swap": 123456, "old": "PS00012345678", "new": "PS00087654321",
            "model": "Verifone V660P-A", "tid": "T1234567", "date": "2027-12-31",
            "reason_code": _longest(SWAP_CODES), "engineer": "Engineer Name",
            "version": 12345,
        }  # fmt: skip
    return [NoticeItem(kind, payload)]


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    template: str
    problem: str

    def __str__(self) -> str:
        return f"{self.template}: {self.problem}"


def check_templates(policy: NoticePolicy) -> list[TemplateProblem]:
    """Render every kind × language × channel (and an email / call digest) with long sample
    values (the longest reason of the catalogue) and check every reason text; report URLs,
    requests for secrets, missing hotline / code / never-ask line, and SMS over the
    policy's segment limit."""
    from fleet.notices.reasons import check_catalogue  # noqa: PLC0415

    problems = [TemplateProblem("reason catalogue", p) for p in check_catalogue()]
    code = "ABCDE-FGHJK"
    merchant = "Merchant name of forty characters, long!"
    for lang in LANGUAGES:
        for channel in CHANNELS:
            cases = [(f"{k}.{lang}.{channel}.j2", sample_items(k)) for k in KINDS]
            if channel != "sms":  # an SMS digest takes only what fits (see fleet.notices.outbox)
                cases.append(
                    (f"frame.{lang}.{channel}.j2 (digest)",
                     sample_items("swap_done") + sample_items("follow_up"))
                )  # fmt: skip
            for name, items in cases:
                try:
                    out = render(
                        items, channel=channel, language=lang, zone="Asia/Shanghai",
                        merchant=merchant, code=code, policy=policy,
                    )  # fmt: skip
                except (TemplateError, KeyError, ValueError) as exc:
                    problems.append(TemplateProblem(name, f"does not render: {exc}"))
                    continue
                text = f"{out.subject}\n{out.body}"
                if problem := forbidden(text):
                    problems.append(TemplateProblem(name, f"contains {problem}"))
                for must, what in (
                    (policy.hotline, "the official hotline"),
                    (code, "the verification code"),
                    (_NEVER_ASK[lang], "the never-ask line"),
                ):
                    if must not in text:
                        problems.append(TemplateProblem(name, f"does not state {what}"))
                if out.sms is not None and out.sms.segments > policy.sms_max_segments:
                    problems.append(
                        TemplateProblem(
                            name,
                            f"SMS of {out.sms.segments} segments ({out.sms.encoding}, "
                            f"{out.sms.units} units) is over the limit of "
                            f"{policy.sms_max_segments}",
                        )
                    )
    return problems
