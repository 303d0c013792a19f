"""The fleet's tables, as SQLModel classes. Declarations only: no engine, no I/O.

Natural keys throughout (a model's code, a firmware's ``(model, version)``, a merchant's
id, a terminal's serial): they are what people type, what the CSV files carry and what
the wire reports, so imports and reports need no id look-ups.

======================  ==========================================================
table                   holds
======================  ==========================================================
``terminal_model``      catalog: vendor, dates, PCI PTS approval, capabilities, price
``firmware``            catalog: a model's firmware versions and their support
``advisory``            catalog: a security advisory on a model, and its fix (if any)
``advisory_firmware``   catalog: which firmware versions an advisory affects
``merchant``            who owns terminals, and how to reach them
``terminal``            every device: model, firmware, TID/MID, status, versions
``health_sample``       every health report of a terminal (sign-on or health poll)
``terminal_health``     a terminal's latest health and the least-squares sums of its
                        wear counters over its whole history (one row per terminal)
``key_version``         the master key versions the fleet issued: check value, when
                        (never a key: master keys live in files, docs/protocol.md)
``audit``               every change: who, when, what, why
======================  ==========================================================

Money is integer minor units (``unit_price`` with ``currency``); instants are stored in
UTC and always read back timezone-aware (:class:`UTCDateTime`, declared with :func:`now`
in :mod:`fleet.core.clauses`, where the quick commands' bare table clauses use it too).

Over 400 lines on purpose: this is the whole schema, every table once, as the Alembic
migrations and the database have it. Split by domain it would have to be put back
together for ``metadata`` anyway; kept together, a foreign key and its target, or the
claim indexes of messages and rollout jobs, read side by side. It declares, nothing else.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel

from fleet.core.clauses import UTCDateTime, now
from fleet.core.status import ACTIVE_STATUSES, Status

__all__ = [
    "ACTIVE_STATUSES",
    "EVENTS",
    "VERIFICATIONS",
    "Advisory",
    "AdvisoryFirmware",
    "Audit",
    "ContactEvent",
    "Event",
    "Firmware",
    "HealthSample",
    "IssuedKey",
    "Merchant",
    "Message",
    "Status",
    "Swap",
    "Terminal",
    "TerminalHealth",
    "TerminalModel",
    "UTCDateTime",
    "VerificationLog",
    "metadata",
    "now",
]

metadata = SQLModel.metadata


class TerminalModel(SQLModel, table=True):
    __tablename__ = "terminal_model"

    code: str = Field(primary_key=True, max_length=40)
    vendor: str = Field(max_length=80)
    name: str = Field(default="", max_length=120)
    released_on: date | None = None
    end_of_sale: date | None = None
    end_of_support: date | None = None
    pts_version: str = Field(default="", max_length=20)
    """PCI PTS POI version of the approval, e.g. ``5.x`` or ``6.2``."""
    pts_expires_on: date | None = None
    chip: bool = False
    contactless: bool = False
    magstripe: bool = False
    qr: bool = False
    pin_pad: bool = False
    unit_price: int = 0
    """Price of one unit, in minor units of ``currency``."""
    currency: str = Field(default="EUR", max_length=3)
    successor: str | None = Field(default=None, max_length=40)
    """The model that replaces this one (its price is the forecast's cost)."""
    reader_rated_cycles: int | None = None
    """Card insertions and swipes (chip + magstripe reads) the reader is rated for."""
    printer_rated_lines: int | None = None
    """Lines the print head is rated for (none: no printer, or not rated)."""
    battery_rated_cycles: int | None = None
    """Full charge cycles the battery is rated for (none: no battery, or not rated)."""

    def capabilities(self) -> list[str]:
        names = ("chip", "contactless", "magstripe", "qr", "pin_pad")
        return [n for n in names if getattr(self, n)]


class Firmware(SQLModel, table=True):
    __tablename__ = "firmware"
    __table_args__ = (
        ForeignKeyConstraint(["model"], ["terminal_model.code"], name="fk_firmware_model"),
    )

    model: str = Field(primary_key=True, max_length=40)
    version: str = Field(primary_key=True, max_length=40)
    released_on: date | None = None
    end_of_support: date | None = None


class Advisory(SQLModel, table=True):
    """A known security advisory on a model's firmware; ``fixed_in`` is the fixing version."""

    __tablename__ = "advisory"
    __table_args__ = (
        ForeignKeyConstraint(["model"], ["terminal_model.code"], name="fk_advisory_model"),
    )

    id: str = Field(primary_key=True, max_length=40)
    model: str = Field(primary_key=True, max_length=40)
    title: str = Field(default="", max_length=200)
    severity: str = Field(default="high", max_length=10)
    published_on: date | None = None
    fixed_in: str | None = Field(default=None, max_length=40)


class AdvisoryFirmware(SQLModel, table=True):
    """An advisory affects this firmware version of its model."""

    __tablename__ = "advisory_firmware"
    __table_args__ = (
        ForeignKeyConstraint(
            ["advisory", "model"],
            ["advisory.id", "advisory.model"],
            name="fk_advfw_advisory",
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["model", "version"], ["firmware.model", "firmware.version"], name="fk_advfw_fw"
        ),
    )

    advisory: str = Field(primary_key=True, max_length=40)
    model: str = Field(primary_key=True, max_length=40)
    version: str = Field(primary_key=True, max_length=40)


class Merchant(SQLModel, table=True):
    __tablename__ = "merchant"

    id: str = Field(primary_key=True, max_length=15)
    name: str = Field(max_length=120)
    mcc: int
    phone: str | None = Field(default=None, max_length=16)
    """E.164, e.g. ``+8613812345678``."""
    email: str | None = Field(default=None, max_length=254)
    language: str = Field(default="en", max_length=16)
    timezone: str = Field(default="UTC", max_length=64)
    country: str | None = Field(default=None, max_length=2)
    region: str | None = Field(default=None, max_length=40)
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    channels: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """Contact preferences: channels in order of preference (``sms``, ``email``, ``call``)."""
    opt_out: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """Channels the merchant opted out of."""


class Terminal(SQLModel, table=True):
    __tablename__ = "terminal"
    __table_args__ = (
        ForeignKeyConstraint(["model"], ["terminal_model.code"], name="fk_terminal_model"),
        ForeignKeyConstraint(
            ["model", "firmware"], ["firmware.model", "firmware.version"], name="fk_terminal_fw"
        ),
        ForeignKeyConstraint(["merchant_id"], ["merchant.id"], name="fk_terminal_merchant"),
        Index(
            "uq_terminal_live_tid",
            "tid",
            unique=True,
            sqlite_where=text("status IN ('deployed', 'faulty')"),
            postgresql_where=text("status IN ('deployed', 'faulty')"),
        ),
        Index("ix_terminal_merchant", "merchant_id"),
        Index("ix_terminal_model_fw", "model", "firmware"),
        Index("ix_terminal_status", "status"),
        Index("ix_terminal_status_serial", "status", "serial"),
        Index("ix_terminal_model_serial", "model", "serial"),
        Index("ix_terminal_status_model_serial", "status", "model", "serial"),
        CheckConstraint(
            "status IN ('in_stock', 'deployed', 'faulty', 'swapped_out', 'retired')",
            name="ck_terminal_status",
        ),
    )

    serial: str = Field(primary_key=True, max_length=40)
    model: str = Field(max_length=40)
    firmware: str = Field(max_length=40)
    tid: str | None = Field(default=None, max_length=8)
    mid: str | None = Field(default=None, max_length=15)
    merchant_id: str | None = Field(default=None, max_length=15)
    manufactured_on: date | None = None
    deployed_on: date | None = None
    status: str = Field(default=Status.IN_STOCK.value, max_length=12)
    fault_count: int = 0
    last_seen: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    link: str | None = Field(default=None, max_length=200)
    """Where the host reaches it: a pyserial URL (``socket://…``, ``/dev/ttyUSB0``…)."""
    active_version: int = 0
    pending_version: int = 0
    key_version: int | None = None
    """The MAC key version the terminal reported at its last sign-on (None: never heard)."""
    key_next: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default=text("0"))
    )
    """The next key version it holds while a key change awaits confirmation (0: none). A
    server default, not a client one: inventory imports write only their own columns."""


class HealthSample(SQLModel, table=True):
    """One health report of a terminal (tags 0x10-0x16, docs/protocol.md), as received:
    at a sign-on (``sync``) or a health poll (``poll``)."""

    __tablename__ = "health_sample"
    __table_args__ = (
        ForeignKeyConstraint(["serial"], ["terminal.serial"], name="fk_health_terminal"),
    )

    serial: str = Field(primary_key=True, max_length=40)
    at: datetime = Field(sa_column=Column(UTCDateTime(), primary_key=True))
    """When the fleet received it (the fleet's clock, UTC)."""
    source: str = Field(default="poll", max_length=8)
    battery_level: int | None = None
    battery_health: int | None = None
    """Capacity left, % of new."""
    battery_cycles: int | None = None
    paper: int | None = None
    """0 ok, 1 low, 2 out (none: no printer)."""
    printer_lines: int | None = None
    chip: int = 0
    contactless: int = 0
    magstripe: int = 0
    tamper: bool = False
    tampered_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    uptime: int = 0
    last_reboot: int = 0
    free_storage: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class TerminalHealth(SQLModel, table=True):
    """A terminal's latest health, and the sums a least-squares line of each wear counter
    over its whole history rests on (x: days since 1970-01-01 UTC, y: the counter), kept
    up to date as samples arrive, so flagging reads one row per terminal, not its history
    (:mod:`fleet.device.health`)."""

    __tablename__ = "terminal_health"
    __table_args__ = (
        ForeignKeyConstraint(["serial"], ["terminal.serial"], name="fk_thealth_terminal"),
        Index("ix_terminal_health_tamper", "tamper"),
    )

    serial: str = Field(primary_key=True, max_length=40)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    """The latest sample's instant."""
    samples: int = 0
    tamper: bool = False
    tampered_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    battery_level: int | None = None
    battery_health: int | None = None
    battery_cycles: int | None = None
    paper: int | None = None
    printer_lines: int | None = None
    reader: int = 0
    """Chip + magstripe reads (what wears the reader; contactless taps do not)."""
    contactless: int = 0
    uptime: int = 0
    last_reboot: int = 0
    free_storage: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    reader_n: int = 0
    reader_sx: float = 0.0
    reader_sxx: float = 0.0
    reader_sy: float = 0.0
    reader_sxy: float = 0.0
    printer_n: int = 0
    printer_sx: float = 0.0
    printer_sxx: float = 0.0
    printer_sy: float = 0.0
    printer_sxy: float = 0.0
    battery_n: int = 0
    battery_sx: float = 0.0
    battery_sxx: float = 0.0
    battery_sy: float = 0.0
    battery_sxy: float = 0.0
    reader_slope: float | None = None
    """Each counter's line, from the sums above (:meth:`~fleet.replacements.wear.Fit.slope`,
    :meth:`~fleet.replacements.wear.Fit.intercept`; none: no line), kept with them so
    flagging reads two numbers per counter instead of working them out of five."""
    reader_intercept: float | None = None
    printer_slope: float | None = None
    printer_intercept: float | None = None
    battery_slope: float | None = None
    battery_intercept: float | None = None


class IssuedKey(SQLModel, table=True):
    """A master key version the fleet issued: its check value, never the key.

    A terminal that reports a key version not here holds a key the fleet never issued (a
    leaked key used to re-key it): it must be replaced (docs/protocol.md).
    """

    __tablename__ = "key_version"

    version: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    check_value: str = Field(max_length=6)
    """KCV of the master key (hex): identifies it without revealing it."""
    registered_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    registered_by: str = Field(max_length=80)
    note: str = Field(default="", max_length=500)


class Audit(SQLModel, table=True):
    """One change to the fleet: who, when, what (action + target + details) and why."""

    __tablename__ = "audit"
    __table_args__ = (
        Index("ix_audit_at", "at"),
        Index("ix_audit_target", "target"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))
    actor: str = Field(max_length=80)
    action: str = Field(max_length=40)
    """``import``, ``add``, ``update``, ``sync``, ``swap``, ``publish``, ``push``, ``override``,
    ``key`` (a key version registered, a key rollout, a terminal's key changed)…"""
    target: str = Field(default="", sa_column=Column(String(200), nullable=False))
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    reason: str = Field(default="", max_length=500)


class PublishedTable(SQLModel, table=True):
    """A published fee table: immutable; versions strictly increase."""

    __tablename__ = "fee_table"

    version: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    name: str = Field(default="", max_length=200)
    currency: int
    effective: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    group: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """Which merchants it applies to (:class:`fleet.fees.tablefile.Group`); empty = all."""
    wire: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    """The fee-table file exactly as pushed (wire page §6)."""
    sha256: str = Field(max_length=64)
    source: str = Field(sa_column=Column(Text, nullable=False))
    """The TOML it was published from."""
    published_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    published_by: str = Field(max_length=80)
    raises: bool = False
    """It raises some merchant's fee on the typical basket (the notice period applied)."""
    notice_override: str | None = Field(default=None, max_length=500)


class Notice(SQLModel, table=True):
    """The notices outbox: written in the transaction of the event that causes it.

    ``queued`` → (composed into a message) ``composed`` → ``sent`` | ``failed``; or
    ``cancelled`` (an optional notice to a merchant who opted out of every channel).
    """

    __tablename__ = "notice"
    __table_args__ = (
        UniqueConstraint("kind", "merchant_id", "ref", name="uq_notice_event"),
        Index("ix_notice_status", "status", "not_before"),
        Index("ix_notice_message", "message_id"),
        ForeignKeyConstraint(["message_id"], ["message.id"], name="fk_notice_message"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=20)
    """``fee_change``, ``swap_planned``, ``swap_done``, ``follow_up``."""
    merchant_id: str = Field(foreign_key="merchant.id", max_length=15)
    ref: str = Field(max_length=60)
    """The event: ``fee:7`` for fee table 7, ``swap:12`` for swap 12…"""
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    status: str = Field(default="queued", max_length=12)
    not_before: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    """Not sent before this instant (a follow-up days after its swap); none: at once."""
    channel: str | None = Field(default=None, max_length=12)
    """Forced channel (``call`` for a follow-up call task); none: the merchant's choice."""
    message_id: int | None = None
    """The message (maybe a digest) that carries it."""
    note: str | None = Field(default=None, max_length=500)
    """Why it was deferred or cancelled."""


class Message(SQLModel, table=True):
    """One send to one merchant on one channel: one notice, or several as a digest.

    ``ready`` → (claimed under a lease) ``sending`` → ``sent`` | ``ready`` (retry, after
    backoff) | ``failed``. Its ``code`` is what the merchant quotes to verify it.
    """

    __tablename__ = "message"
    __table_args__ = (
        UniqueConstraint("code", name="uq_message_code"),
        Index("ix_message_claim", "status", "not_before"),
        Index("ix_message_merchant", "merchant_id", "channel", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=12)
    merchant_id: str = Field(foreign_key="merchant.id", max_length=15)
    channel: str = Field(max_length=12)
    address: str = Field(max_length=254)
    """Where it goes: the phone (E.164) or email at the time it was composed."""
    language: str = Field(max_length=16)
    kinds: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    subject: str = Field(default="", max_length=200)
    body: str = Field(sa_column=Column(Text, nullable=False))
    sms_encoding: str | None = Field(default=None, max_length=8)
    segments: int | None = None
    cost: int | None = None
    """SMS cost in minor units of ``cost_currency``."""
    cost_currency: str | None = Field(default=None, max_length=3)
    status: str = Field(default="ready", max_length=12)
    attempts: int = 0
    not_before: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    lease_owner: str | None = Field(default=None, max_length=80)
    lease_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    transport: str | None = Field(default=None, max_length=200)
    """How it went out (``smtp://127.0.0.1:2525``, ``folder:outbox``…), without secrets."""
    provider_ref: str | None = Field(default=None, max_length=200)
    """The transport's id for it (the email's Message-ID, the file written…)."""
    error: str | None = Field(default=None, max_length=500)
    delivery: str | None = Field(default=None, max_length=12)
    """Beside the send state, what the provider said (:mod:`fleet.notices.receipts`):
    ``queued`` < ``sent`` < ``delivered`` | ``undelivered`` | ``failed`` (it only moves
    forward); an email bounce sets ``failed``. None: no receipt yet."""
    delivered_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    """When the provider confirmed delivery (an SMS is delivered only on a receipt)."""
    delivery_error: str | None = Field(default=None, max_length=200)
    """The provider's error code, or the bounce's status and diagnostic."""


class ContactEvent(SQLModel, table=True):
    """Opt-outs, opt-ins and complaints, as the merchant made them."""

    __tablename__ = "contact_event"
    __table_args__ = (Index("ix_contact_merchant", "merchant_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    merchant_id: str = Field(foreign_key="merchant.id", max_length=15)
    kind: str = Field(max_length=12)
    """``opt_out``, ``opt_in``, ``complaint``."""
    channel: str = Field(max_length=12)
    note: str = Field(default="", max_length=500)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    actor: str = Field(max_length=80)


class Swap(SQLModel, table=True):
    """A terminal replacement at a merchant: ``planned`` → ``done`` (or ``cancelled``)."""

    __tablename__ = "swap"
    __table_args__ = (
        Index("ix_swap_old", "old_serial"),
        Index("ix_swap_status", "status", "planned_for"),
        Index("ix_swap_follow_up", "follow_up_state", "follow_up_on"),
        CheckConstraint("status IN ('planned', 'done', 'cancelled')", name="ck_swap_status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    old_serial: str = Field(foreign_key="terminal.serial", max_length=40)
    new_serial: str | None = Field(default=None, foreign_key="terminal.serial", max_length=40)
    merchant_id: str = Field(foreign_key="merchant.id", max_length=15)
    tid: str = Field(max_length=8)
    mid: str = Field(max_length=15)
    status: str = Field(default="planned", max_length=12)
    planned_for: date | None = None
    reason: str = Field(max_length=500)
    engineer: str = Field(default="", max_length=80)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    created_by: str = Field(max_length=80)
    done_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    follow_up_on: date | None = None
    """When the follow-up (回访) is due: moved on by the policy after an unreached call."""
    reason_code: str | None = Field(default=None, max_length=32)
    """Why, as the merchant reads it (:mod:`fleet.notices.reasons`); ``reason`` is the
    operator's note, never sent."""
    follow_up_state: str | None = Field(default=None, max_length=12)
    """``due`` (after the swap) → ``done`` (reached) | ``due`` again (unreached, retried) |
    ``unreached`` (the policy's attempts used up)."""
    follow_up_attempts: int = 0
    followed_up_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    satisfaction: int | None = None
    """1–5, as the merchant said on the follow-up."""
    follow_up_issue: str | None = Field(default=None, max_length=500)
    issue_open: bool = False
    provision: str | None = Field(default=None, max_length=500)
    """After ``--port``: ``ok: synced; table 7 committed, verified (test fee 60)`` or what
    failed."""
    merchant_reply: str | None = Field(default=None, max_length=12)
    """The merchant's SMS answer to a planned swap: ``confirmed`` (1) or ``reschedule`` (2)."""
    replied_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))


class Rollout(SQLModel, table=True):
    """A staged rollout of one ``kind``: a fee table (``version``) or a key change
    (``key_from`` → ``key_version``)."""

    __tablename__ = "rollout"
    __table_args__ = (
        ForeignKeyConstraint(["key_version"], ["key_version.version"], name="fk_rollout_key"),
        ForeignKeyConstraint(["key_from"], ["key_version.version"], name="fk_rollout_key_from"),
        CheckConstraint(
            "(kind = 'fees' AND version IS NOT NULL AND key_version IS NULL) OR "
            "(kind = 'key' AND version IS NULL AND key_version IS NOT NULL "
            "AND key_from IS NOT NULL)",
            name="ck_rollout_kind",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(default="fees", max_length=8)
    """``fees`` (push a fee table) or ``key`` (change the terminals' MAC key)."""
    version: int | None = Field(default=None, foreign_key="fee_table.version")
    """The fee table (``fees``)."""
    key_version: int | None = None
    """The key version the terminals move to (``key``)."""
    key_from: int | None = None
    """The key version they move from (``key``)."""
    group: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    waves: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """Cumulative share of the terminals per wave, in ppm (1 %, 10 %, 100 % → 10000…)."""
    max_failure_ppm: int = 50_000
    max_attempts: int = 5
    status: str = Field(default="running", max_length=12)
    """``running``, ``paused``, ``halted``, ``cancelled``, ``done``."""
    wave: int = 0
    """The wave now open (jobs of later waves wait)."""
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    created_by: str = Field(max_length=80)
    note: str = Field(default="", max_length=500)


class RolloutJob(SQLModel, table=True):
    """One terminal of a rollout; claimed by a worker under a lease."""

    __tablename__ = "rollout_job"
    __table_args__ = (
        UniqueConstraint("rollout_id", "serial", name="uq_job_terminal"),
        Index("ix_job_claim", "rollout_id", "status", "wave", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    rollout_id: int = Field(foreign_key="rollout.id")
    wave: int
    serial: str = Field(foreign_key="terminal.serial", max_length=40)
    status: str = Field(default="pending", max_length=12)
    """``pending``, ``running``, ``done``, ``failed``, ``cancelled``."""
    attempts: int = 0
    lease_owner: str | None = Field(default=None, max_length=80)
    lease_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    next_attempt_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    last_error: str | None = Field(default=None, max_length=500)
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))


class PushAttempt(SQLModel, table=True):
    """Every attempt on a terminal, from `push` or a rollout job, with its outcome: a fee
    table push (``kind`` ``fees``, ``version`` the table) or a key change (``key``,
    ``version`` the key version)."""

    __tablename__ = "push_attempt"
    __table_args__ = (Index("ix_attempt_serial", "serial"), Index("ix_attempt_job", "job_id"))

    id: int | None = Field(default=None, primary_key=True)
    job_id: int | None = Field(default=None, foreign_key="rollout_job.id")
    serial: str = Field(max_length=40)
    kind: str = Field(default="fees", max_length=8)
    version: int
    worker: str = Field(default="", max_length=80)
    started_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    outcome: str = Field(default="", max_length=12)
    """``pushed``, ``already``, ``error``; a key change: ``changed`` (change and
    confirmation), ``confirmed`` (a change made before, confirmed now), ``already``,
    ``error``."""
    resumed_from: int = 0
    blocks_sent: int = 0
    test_fee: int | None = None
    error: str | None = Field(default=None, max_length=500)


class Event(SQLModel, table=True):
    """The events outbox (:mod:`fleet.core.events`): what happened, written in the
    transaction that made it happen; ``fanned_out`` once a consumer copied it."""

    __tablename__ = "event"
    __table_args__ = (
        Index(
            "ix_event_pending",
            "id",
            sqlite_where=text("fanned_out = 0"),
            postgresql_where=text("NOT fanned_out"),
        ),
        Index("ix_event_kind_at", "kind", "occurred_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=40)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    occurred_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    fanned_out: bool = False


class VerificationLog(SQLModel, table=True):
    """The verification log (:mod:`fleet.notices.verify_log`): every code the call centre
    checked, genuine or not, with who asked, from where, and the calling merchant."""

    __tablename__ = "verification"
    __table_args__ = (
        Index("ix_verification_at", "at"),
        Index("ix_verification_genuine", "genuine", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    code: str = Field(max_length=40)
    genuine: bool
    message_id: int | None = None
    merchant_id: str | None = Field(default=None, max_length=15)
    """Whose message it is (genuine), or the calling merchant the agent named."""
    region: str | None = Field(default=None, max_length=40)
    actor: str = Field(max_length=80)
    address: str = Field(default="", max_length=64)
    """Where the check came from (the agent's client address), when known."""
    note: str = Field(default="", max_length=500)


class SmsProvider(SQLModel, table=True):
    """An SMS provider allowed to call the status and inbound endpoints. Its secret is
    kept as a SHA-256 (compared in constant time); for HMAC signatures it is also sealed
    under the secrets key (never in clear)."""

    __tablename__ = "sms_provider"

    name: str = Field(primary_key=True, max_length=40)
    secret_hash: str = Field(max_length=64)
    secret_box: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    key_id: str | None = Field(default=None, max_length=16)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    created_by: str = Field(max_length=80)


class DeliveryReceipt(SQLModel, table=True):
    """Every status callback once (by provider, provider message id and status): what
    came, when, and whether it moved the message's delivery state (``applied``)."""

    __tablename__ = "delivery_receipt"
    __table_args__ = (
        UniqueConstraint("provider", "provider_id", "status", name="uq_receipt"),
        Index("ix_receipt_message", "message_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=40)
    provider_id: str = Field(max_length=80)
    status: str = Field(max_length=12)
    error_code: str | None = Field(default=None, max_length=40)
    received_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    message_id: int | None = None
    applied: bool = False


class InboundReply(SQLModel, table=True):
    """An SMS a merchant sent us, once per provider id, and what it did."""

    __tablename__ = "inbound_reply"
    __table_args__ = (
        UniqueConstraint("provider", "provider_id", name="uq_inbound"),
        Index("ix_inbound_merchant", "merchant_id", "received_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=40)
    provider_id: str = Field(max_length=80)
    from_number: str = Field(max_length=20)
    body: str = Field(sa_column=Column(Text, nullable=False))
    received_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    merchant_id: str | None = Field(default=None, max_length=15)
    message_id: int | None = None
    """The most recent message sent to that number: the notice it answers."""
    action: str = Field(max_length=16)
    """``opt_out``, ``confirm``, ``reschedule``, ``call_task``, ``unmatched``."""


class CallTask(SQLModel, table=True):
    """Work for the call centre that came from a merchant: a reply to read back, a swap
    to reschedule. ``text`` is the merchant's own words (escaped wherever shown)."""

    __tablename__ = "call_task"
    __table_args__ = (Index("ix_call_task_status", "status", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    merchant_id: str | None = Field(default=None, max_length=15)
    phone: str = Field(default="", max_length=20)
    kind: str = Field(max_length=16)
    """``reply`` (anything we could not act on), ``reschedule`` (a planned swap)."""
    ref: str = Field(default="", max_length=60)
    """What it is about: ``swap:12``, ``message:ABCDE-FGHJK``…"""
    text: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    status: str = Field(default="open", max_length=8)


class ScamComplaint(SQLModel, table=True):
    """A merchant's report of a call or text claiming to be us (the scam radar)."""

    __tablename__ = "scam_complaint"
    __table_args__ = (Index("ix_scam_complaint_at", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    region: str = Field(max_length=40)
    merchant_id: str | None = Field(default=None, max_length=15)
    channel: str = Field(max_length=12)
    """How the scam came: ``call``, ``sms``, ``email``, ``visit``."""
    note: str = Field(default="", max_length=500)
    actor: str = Field(max_length=80)


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of a model (typed, for SQL built with ``table.c.column``)."""
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


MODELS = table_of(TerminalModel)
FIRMWARE = table_of(Firmware)
ADVISORIES = table_of(Advisory)
ADVISORY_FIRMWARE = table_of(AdvisoryFirmware)
MERCHANTS = table_of(Merchant)
TERMINALS = table_of(Terminal)
AUDIT = table_of(Audit)
ISSUED_KEYS = table_of(IssuedKey)
HEALTH_SAMPLES = table_of(HealthSample)
TERMINAL_HEALTH = table_of(TerminalHealth)
FEE_TABLES = table_of(PublishedTable)
NOTICES = table_of(Notice)
MESSAGES = table_of(Message)
CONTACT_EVENTS = table_of(ContactEvent)
SWAPS = table_of(Swap)
ROLLOUTS = table_of(Rollout)
JOBS = table_of(RolloutJob)
ATTEMPTS = table_of(PushAttempt)
EVENTS = table_of(Event)
VERIFICATIONS = table_of(VerificationLog)
SMS_PROVIDERS = table_of(SmsProvider)
RECEIPTS = table_of(DeliveryReceipt)
INBOUND = table_of(InboundReply)
CALL_TASKS = table_of(CallTask)
SCAM_COMPLAINTS = table_of(ScamComplaint)
