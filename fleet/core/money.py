"""Money: integer minor units in the currency's own precision. Pure, no I/O.

The one place that knows currencies. Amounts are kept, summed and sent on the wire as
integers of the currency's minor unit; text becomes minor units with :func:`parse_minor`
and minor units become text with :func:`format_minor` (plain, as files, reports and
notices write it) or :func:`format_money` (locale-aware, for ``en`` and ``zh-CN``):

>>> parse_minor("349.90", "EUR"), parse_minor("500", "VND"), parse_minor("1.250", "KWD")
(34990, 500, 1250)
>>> format_minor(34990, "EUR"), format_minor(500, "VND"), format_minor(1250, "KWD")
('349.90', '500', '1.250')
>>> format_money(123456, "EUR", "en"), format_money(123456, "JPY", "zh-CN")
('€1,234.56', 'JP¥123,456')
>>> parse_minor("349.999", "EUR")
Traceback (most recent call last):
fleet.core.money.MoneyError: 349.999 has more than 2 decimals for EUR

**Where the facts come from** (no hand tables):

* the precision (digits of the minor unit) is CLDR's, through Babel
  (:func:`babel.numbers.get_currency_precision`); CLDR also gives the locale formats;
* the ISO 4217 list of currencies and their numeric codes (the wire's ``n3`` currency,
  ``156`` = CNY) come from ``pycountry`` (the iso-codes database Debian maintains):
  Babel has no numeric codes.

>>> numeric_code("CNY"), alpha_code(156), alpha_code(704)
(156, 'CNY', 'VND')

**Precision is CLDR's, by choice, not ISO 4217's minor-unit column.** CLDR gives the digits
people write and pay in; ISO 4217 keeps a minor unit that is no longer used in 15
currencies (Babel 2.19's CLDR against ISO 4217 as published 2026-01-01):

=====  ====  ===  ==========================================================
code   CLDR  ISO  currency
=====  ====  ===  ==========================================================
AFN    0     2    Afghan afghani
ALL    0     2    Albanian lek
COP    0     2    Colombian peso
HUF    0     2    Hungarian forint
IDR    0     2    Indonesian rupiah
IQD    0     3    Iraqi dinar
IRR    0     2    Iranian rial
KPW    0     2    North Korean won
LAK    0     2    Lao kip
LBP    0     2    Lebanese pound
MGA    0     2    Malagasy ariary
MMK    0     2    Myanmar kyat
SOS    0     2    Somali shilling
SYP    0     2    Syrian pound
YER    0     2    Yemeni rial
=====  ====  ===  ==========================================================

and the fund, metal and testing codes that ISO gives no minor unit (XAG, XAU, XBA–XBD,
XDR, XPD, XPT, XSU, XTS, XUA, XXX) have CLDR's default of 2. Every amount posfleet keeps,
shows and sends is in this one precision, the wire's included: a fee table's ``fixed``,
``min`` and ``max`` for HUF are whole forints (``min = "10"`` goes out as 10, which an
ISO-minded peer would read as 0.10), the basket and the test sale likewise
(``docs/fees.md``, "Money and its precision").

>>> precision("HUF"), precision("IDR"), precision("COP"), precision("IQD")
(0, 0, 0, 0)
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

from fleet.core.errors import InputError

__all__ = [
    "MoneyError",
    "alpha_code",
    "countries_using",
    "country_currencies",
    "currencies",
    "format_minor",
    "format_money",
    "is_currency",
    "numeric_code",
    "parse_currency_code",
    "parse_decimal",
    "parse_minor",
    "precision",
    "to_decimal",
]


class MoneyError(InputError, ValueError):
    """An amount or a currency that can't be used (a ``ValueError`` too, for value parsers
    whose callers add the file, line and column)."""


@cache
def _iso() -> tuple[dict[str, int], dict[int, str]]:
    """ISO 4217: alpha → numeric and numeric → alpha, read once on first use."""
    import pycountry  # noqa: PLC0415  (a 1 MB database: only when money meets a currency)

    by_alpha = {c.alpha_3: int(c.numeric) for c in pycountry.currencies}
    return by_alpha, {n: a for a, n in by_alpha.items()}


def currencies() -> tuple[str, ...]:
    """Every current ISO 4217 alphabetic code, sorted."""
    return tuple(sorted(_iso()[0]))


def is_currency(alpha: str) -> bool:
    """Whether ``alpha`` is a current ISO 4217 code (``"EUR"``; case matters)."""
    return alpha in _iso()[0]


def parse_currency_code(text: str) -> str:
    """``" eur "`` → ``"EUR"``; a code ISO 4217 does not list is refused.

    >>> parse_currency_code(" vnd ")
    'VND'
    >>> parse_currency_code("XYZ")
    Traceback (most recent call last):
    fleet.core.money.MoneyError: not an ISO 4217 currency code: 'XYZ'
    """
    value = text.strip().upper() if isinstance(text, str) else ""
    if not is_currency(value):
        raise MoneyError(f"not an ISO 4217 currency code: {text!r}")
    return value


def numeric_code(alpha: str) -> int:
    """The ISO 4217 numeric code of ``alpha`` (what the wire carries)."""
    try:
        return _iso()[0][alpha]
    except KeyError:
        raise MoneyError(f"not an ISO 4217 currency code: {alpha!r}") from None


def alpha_code(numeric: int) -> str:
    """The alphabetic code of an ISO 4217 numeric code; an unknown one is refused."""
    try:
        return _iso()[1][numeric]
    except KeyError:
        raise MoneyError(f"not an ISO 4217 numeric currency code: {numeric:03d}") from None


@cache
def _tender() -> dict[str, tuple[str, ...]]:
    """ISO 3166 country → the currencies that are legal tender there today (CLDR, Babel)."""
    from babel import Locale  # noqa: PLC0415
    from babel.numbers import get_territory_currencies  # noqa: PLC0415

    found: dict[str, tuple[str, ...]] = {}
    for territory in map(str, Locale("en").territories):
        if len(territory) == 2 and territory.isalpha():
            tender = get_territory_currencies(territory, tender=True)
            if tender:
                found[territory] = tuple(tender)
    return found


def country_currencies(country: str) -> tuple[str, ...]:
    """The currencies a merchant in ``country`` (ISO 3166 alpha-2) is paid in: what is legal
    tender there today, by CLDR (via Babel); empty for a code CLDR does not know.

    >>> country_currencies("IE"), country_currencies("CN"), country_currencies("PA")
    (('EUR',), ('CNY',), ('PAB', 'USD'))
    """
    return _tender().get(country.upper(), ())


@cache
def countries_using(currency: str | int) -> tuple[str, ...]:
    """The countries (ISO 3166 alpha-2, sorted) where ``currency`` is legal tender today:
    the merchants a fee table in that currency may apply to.

    >>> countries_using("CNY"), "IE" in countries_using(978), "SG" in countries_using("EUR")
    (('CN',), True, False)
    """
    alpha = _alpha(currency)
    return tuple(sorted(c for c, tender in _tender().items() if alpha in tender))


def _alpha(currency: str | int) -> str:
    return alpha_code(currency) if isinstance(currency, int) else currency


@cache
def precision(currency: str | int) -> int:
    """Digits of the minor unit (CLDR's, via Babel): 2 for EUR, 0 for JPY and VND, 3 for
    KWD. ``currency`` is the alphabetic or the numeric code.

    >>> precision("EUR"), precision("JPY"), precision("VND"), precision("KWD"), precision(414)
    (2, 0, 0, 3, 3)
    """
    from babel.numbers import get_currency_precision  # noqa: PLC0415

    alpha = _alpha(currency)
    if not is_currency(alpha):
        raise MoneyError(f"not an ISO 4217 currency code: {currency!r}")
    return int(get_currency_precision(alpha))


DECIMAL_RANGE = 30
"""Decimal text posfleet reads (amounts, rates, percentages) lies within 10**±30: beyond,
it is refused as out of range rather than left to overflow the decimal context."""


def parse_decimal(text: str) -> Decimal:
    """Decimal text → an exact, finite :class:`~decimal.Decimal` within 10**±30, or
    :class:`MoneyError` with the reason: the one place posfleet turns text into a decimal,
    so that ``"1E20000000"`` is an error message, never a ``decimal.Overflow``.

    >>> parse_decimal("0.60"), parse_decimal("1E20000000")
    Traceback (most recent call last):
    fleet.core.money.MoneyError: out of range: '1E20000000'
    """
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError, TypeError):
        raise MoneyError(f"not a number: {text!r}") from None
    if not value.is_finite():
        raise MoneyError(f"not a finite number: {text!r}")
    if value and abs(value.adjusted()) > DECIMAL_RANGE:
        raise MoneyError(f"out of range: {text!r}")
    return value


def parse_minor(text: Any, currency: str | int) -> int:
    """A decimal amount (``"1,234.50"``; a whole number also as an int) → integer minor
    units of ``currency``, exactly (no float on the way). Negative, non-finite and finer
    than the currency's minor unit are refused with the reason."""
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise MoneyError(f'write money as a string, e.g. "0.50" (no float), not {text!r}')
    exponent = precision(currency)
    raw = str(text).strip()
    try:
        amount = parse_decimal(raw.replace(",", "").replace("_", ""))
    except MoneyError as exc:
        raise MoneyError(f"not an amount ({exc.message.split(':')[0]}): {text!r}") from None
    if amount < 0:
        raise MoneyError(f"not a non-negative amount: {text!r}")
    minor = amount.scaleb(exponent)
    if minor != minor.to_integral_value():
        raise MoneyError(f"{raw} has more than {exponent} decimals for {_alpha(currency)}")
    return int(minor)


def to_decimal(minor: int, currency: str | int) -> Decimal:
    """Minor units → the amount as an exact :class:`~decimal.Decimal` (``Decimal('5.00')``).

    >>> to_decimal(500, "EUR"), to_decimal(500, "VND"), to_decimal(-5, "KWD")
    (Decimal('5.00'), Decimal('500'), Decimal('-0.005'))
    """
    return Decimal(minor).scaleb(-precision(currency))


def format_minor(minor: int, currency: str | int) -> str:
    """Minor units → plain text with the currency's own decimals, no grouping and no symbol:
    what files, CSV, reports and notices write (``"1234.50"``, ``"500"``, ``"-0.005"``).

    >>> format_minor(123450, "EUR"), format_minor(1200, "JPY"), format_minor(-5, "EUR")
    ('1234.50', '1200', '-0.05')
    """
    exponent = precision(currency)
    if exponent == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**exponent)
    return f"{sign}{whole}.{frac:0{exponent}d}"


def format_money(minor: int, currency: str | int, locale: str = "en") -> str:
    """Minor units → text for a person in ``locale`` (``en``, ``zh-CN``, any CLDR locale):
    symbol, grouping and the currency's own decimals, from CLDR through Babel.

    >>> format_money(-123450, "CNY", "zh-CN"), format_money(1250, "KWD", "en")
    ('-¥1,234.50', 'KWD1.250')
    """
    from babel.numbers import format_currency  # noqa: PLC0415

    return str(
        format_currency(
            to_decimal(minor, currency), _alpha(currency), locale=locale.replace("-", "_")
        )
    )
