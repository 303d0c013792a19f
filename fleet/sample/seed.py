"""A seeded sample fleet: catalog, merchants and inventory files, for the demo, the
benchmarks and the tests. Same seed, same files.

The catalog has six models across three vendors, chosen so that every replacement rule
fires somewhere: a model past end-of-support, PTS approvals expired and expiring, a
model without contactless, firmware past support, and advisories with and without a fix.
Serials, TIDs and MIDs follow ``possim fleet``'s (``PS%08d``, ``T%07d``, ``M%014d``), so
the first terminals of a sample can be served by a simulator fleet.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import Engine, select

from fleet.core.escaping import CsvWriter
from fleet.core.models import MERCHANTS, TERMINALS
from fleet.inventory.terminals import TERMINAL_HEADER

__all__ = ["CATALOG_TOML", "SampleFiles", "write_possim_manifest", "write_sample"]

CATALOG_TOML = """\
# posfleet sample catalog: models, firmware, advisories
[[models]]
code = "PF-100"
vendor = "Pinfold"
name = "Pinfold 100 countertop"
released_on = 2012-03-01
end_of_sale = 2018-06-30
end_of_support = 2024-12-31
pts_version = "3.x"
pts_expires_on = 2023-04-30
chip = true
magstripe = true
pin_pad = true
unit_price = "189.00"
currency = "EUR"
successor = "PF-300"
reader_rated_cycles = 800000
printer_rated_lines = 8000000

[[models]]
code = "PF-200"
vendor = "Pinfold"
name = "Pinfold 200 countertop"
released_on = 2016-09-01
end_of_sale = 2022-12-31
end_of_support = 2027-06-30
pts_version = "4.x"
pts_expires_on = 2026-04-30
chip = true
contactless = true
magstripe = true
pin_pad = true
unit_price = "229.00"
currency = "EUR"
successor = "PF-300"
reader_rated_cycles = 1500000
printer_rated_lines = 10000000

[[models]]
code = "PF-300"
vendor = "Pinfold"
name = "Pinfold 300 Android"
released_on = 2020-05-01
end_of_support = 2031-12-31
pts_version = "6.x"
pts_expires_on = 2030-04-30
chip = true
contactless = true
magstripe = true
qr = true
pin_pad = true
unit_price = "289.00"
currency = "EUR"
reader_rated_cycles = 1500000
printer_rated_lines = 6000000
battery_rated_cycles = 800

[[models]]
code = "VX-520"
vendor = "Verifine"
name = "Verifine 520"
released_on = 2013-01-15
end_of_sale = 2019-12-31
end_of_support = 2025-06-30
pts_version = "4.x"
pts_expires_on = 2024-04-30
chip = true
magstripe = true
pin_pad = true
unit_price = "159.00"
currency = "EUR"
successor = "VX-680"
reader_rated_cycles = 1500000
printer_rated_lines = 10000000

[[models]]
code = "VX-680"
vendor = "Verifine"
name = "Verifine 680 portable"
released_on = 2018-02-01
end_of_support = 2028-12-31
pts_version = "5.x"
pts_expires_on = 2027-04-30
chip = true
contactless = true
magstripe = true
pin_pad = true
unit_price = "249.00"
currency = "EUR"
successor = "PF-300"
reader_rated_cycles = 800000
printer_rated_lines = 5000000
battery_rated_cycles = 500

[[models]]
code = "QR-10"
vendor = "Quarry"
name = "Quarry QR-10 smart"
released_on = 2022-08-01
end_of_support = 2032-12-31
pts_version = "6.x"
pts_expires_on = 2031-04-30
chip = true
contactless = true
qr = true
pin_pad = true
unit_price = "199.00"
currency = "EUR"
reader_rated_cycles = 300000
printer_rated_lines = 6000000
battery_rated_cycles = 600

[[firmware]]
model = "PF-100"
version = "1.8.2"
released_on = 2017-03-01
end_of_support = 2024-12-31

[[firmware]]
model = "PF-200"
version = "1.0.0"
released_on = 2016-09-01
end_of_support = 2025-12-31

[[firmware]]
model = "PF-200"
version = "2.1.0"
released_on = 2021-04-01

[[firmware]]
model = "PF-200"
version = "2.2.0"
released_on = 2024-02-01

[[firmware]]
model = "PF-300"
version = "3.0.0"
released_on = 2020-05-01

[[firmware]]
model = "PF-300"
version = "3.0.2"
released_on = 2025-01-10

[[firmware]]
model = "VX-520"
version = "7.4"
released_on = 2016-05-01
end_of_support = 2025-06-30

[[firmware]]
model = "VX-680"
version = "8.1"
released_on = 2018-02-01
end_of_support = 2027-01-31

[[firmware]]
model = "VX-680"
version = "8.3"
released_on = 2023-06-01

[[firmware]]
model = "QR-10"
version = "1.2"
released_on = 2022-08-01

[[advisories]]
id = "PSA-2025-07"
model = "PF-200"
title = "Contactless kernel buffer overflow"
severity = "critical"
published_on = 2025-07-14
affects = ["2.1.0", "2.2.0"]

[[advisories]]
id = "PSA-2024-19"
model = "PF-300"
title = "Debug port left enabled"
severity = "high"
published_on = 2024-11-02
affects = ["3.0.0"]
fixed_in = "3.0.2"
"""

# (model, firmware, weight, first year made, last year made)
_MIX = (
    ("PF-100", "1.8.2", 4, 2013, 2018),
    ("PF-200", "1.0.0", 3, 2016, 2019),
    ("PF-200", "2.1.0", 8, 2017, 2022),
    ("PF-200", "2.2.0", 10, 2018, 2022),
    ("PF-300", "3.0.0", 6, 2020, 2024),
    ("PF-300", "3.0.2", 30, 2020, 2026),
    ("VX-520", "7.4", 4, 2013, 2019),
    ("VX-680", "8.1", 5, 2018, 2022),
    ("VX-680", "8.3", 15, 2018, 2025),
    ("QR-10", "1.2", 15, 2022, 2026),
)
_CITIES = (  # name, country, timezone, language, phone prefix, region
    ("Shanghai", "CN", "Asia/Shanghai", "zh-CN", "+86138", "east"),
    ("Shenzhen", "CN", "Asia/Shanghai", "zh-CN", "+86139", "south"),
    ("Chengdu", "CN", "Asia/Shanghai", "zh-CN", "+86136", "west"),
    ("Berlin", "DE", "Europe/Berlin", "en", "+49151", "eu"),
    ("Dublin", "IE", "Europe/Dublin", "en", "+35387", "eu"),
    ("Singapore", "SG", "Asia/Singapore", "en", "+6591", "apac"),
)
_MCCS = (5411, 5812, 5814, 5912, 5999, 7011, 4121, 5541)
_KINDS = {
    5411: "Grocery",
    5812: "Restaurant",
    5814: "Noodle Bar",
    5912: "Pharmacy",
    5999: "Shop",
    7011: "Hotel",
    4121: "Taxi",
    5541: "Fuel",
}


@dataclass(frozen=True, slots=True)
class SampleFiles:
    catalog: Path
    merchants: Path
    terminals: Path
    count: int


def _phone(rng: random.Random, prefix: str) -> str:
    if prefix.startswith("+86"):
        return prefix + f"{rng.randrange(10**8):08d}"
    if prefix.startswith("+49"):
        return prefix + f"{rng.randrange(10**8):08d}"
    if prefix.startswith("+353"):
        return prefix + f"{rng.randrange(10**7):07d}"
    return prefix + f"{rng.randrange(10**6):06d}"


def write_sample(
    directory: Path,
    *,
    terminals: int = 300,
    merchants: int | None = None,
    seed: int = 8583,
    as_of: date = date(2026, 11, 1),
    links: dict[str, str] | None = None,
) -> SampleFiles:
    """Write ``catalog.toml``, ``merchants.csv`` and ``terminals.csv`` into ``directory``.

    ``links`` gives serial → link URL for terminals that are really served (the rest
    have none). About 92 % of terminals are deployed, 3 % faulty, 3 % in stock and 2 %
    swapped out.
    """
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    merchants = merchants if merchants is not None else max(1, terminals // 3)
    catalog = directory / "catalog.toml"
    catalog.write_text(CATALOG_TOML, encoding="utf-8")

    merchant_path = directory / "merchants.csv"
    with merchant_path.open("w", encoding="utf-8", newline="") as fh:
        w = CsvWriter(fh)
        w.header(
            [
                "id",
                "name",
                "mcc",
                "phone",
                "email",
                "language",
                "timezone",
                "country",
                "region",
                "tags",
                "channels",
            ]
        )
        for i in range(merchants):
            city, country, tz, lang, prefix, region = _CITIES[i % len(_CITIES)]
            mcc = _MCCS[rng.randrange(len(_MCCS))]
            channels = "sms;email" if i % 4 else "email;sms"
            w.row(
                [
                    f"M{i:014d}",
                    f"{city} {_KINDS[mcc]} {i}",
                    mcc,
                    _phone(rng, prefix),
                    f"owner{i}@merchant{i}.example",
                    lang,
                    tz,
                    country,
                    region,
                    "vip" if i % 17 == 0 else "",
                    channels,
                ]
            )

    weights = [m[2] for m in _MIX]
    terminal_path = directory / "terminals.csv"
    links = links or {}
    with terminal_path.open("w", encoding="utf-8", newline="") as fh:
        w = CsvWriter(fh)
        w.header([*TERMINAL_HEADER, "fault_count"])
        choices = rng.choices(range(len(_MIX)), weights=weights, k=terminals)
        for i in range(terminals):
            model, firmware, _, first, last = _MIX[choices[i]]
            made = date(rng.randint(first, last), rng.randint(1, 12), rng.randint(1, 28))
            made = min(made, as_of - timedelta(days=30))
            roll = rng.random()
            serial = f"PS{i + 1:08d}"
            status = (
                "deployed"
                if roll < 0.92
                else "faulty"
                if roll < 0.95
                else "in_stock"
                if roll < 0.98
                else "swapped_out"
            )
            if serial in links:
                status = "deployed"
            if status == "in_stock":
                w.row([serial, model, firmware, "", "", "", made.isoformat(), "", status, "", 0])
                continue
            deployed = min(made + timedelta(days=rng.randint(20, 400)), as_of)
            merchant = i % merchants
            faults = (
                rng.choice((0, 0, 0, 0, 1, 2, 3, 6)) if status != "faulty" else rng.randint(2, 9)
            )
            w.row(
                [
                    serial,
                    model,
                    firmware,
                    f"T{i + 1:07d}",
                    f"M{merchant:014d}",
                    f"M{merchant:014d}",
                    made.isoformat(),
                    deployed.isoformat(),
                    status,
                    links.get(serial, ""),
                    faults,
                ]
            )
    return SampleFiles(catalog, merchant_path, terminal_path, terminals)


def write_possim_manifest(engine: Engine, path: Path, count: int) -> list[str]:
    """A ``possim fleet --manifest`` CSV (serial,model,firmware,tid,mid,mcc) for the first
    ``count`` deployed terminals of the inventory, so a simulator serves exactly them.
    Returns their serials."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                TERMINALS.c.serial,
                TERMINALS.c.model,
                TERMINALS.c.firmware,
                TERMINALS.c.tid,
                TERMINALS.c.mid,
                MERCHANTS.c.mcc,
            )
            .join(MERCHANTS, MERCHANTS.c.id == TERMINALS.c.merchant_id)
            .where(TERMINALS.c.status == "deployed")
            .order_by(TERMINALS.c.serial)
            .limit(count)
        ).all()
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = CsvWriter(fh)
        writer.header(["serial", "model", "firmware", "tid", "mid", "mcc"])
        for row in rows:
            writer.row(row)
    return [r.serial for r in rows]
