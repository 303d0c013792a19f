"""Where messages go: the transports, one per channel. The I/O edge of the notices.

=============================  ==========================================================
transport                      delivers
=============================  ==========================================================
:class:`FolderTransport`       the default, needs nothing: one file per message under the
                               outbox folder (``email/…/CODE.eml``, ``sms/…/CODE.txt``)
:class:`SmtpTransport`         email over SMTP (``smtp://``, ``smtp+starttls://``,
                               ``smtps://``, with ``user:password@`` if needed)
:class:`AppriseTransport`      SMS (or anything Apprise knows) through an Apprise URL with
                               ``{phone}`` where the merchant's number goes
:class:`CallListTransport`     call-centre work lists: one CSV per day in the outbox folder
=============================  ==========================================================

Each send carries the message's stable id (the file name, the email's ``Message-ID``,
the work-list row's code): a message re-sent after a dispatcher died mid-send is found
again by the folder and the work list (and not written twice), and carries the same
``Message-ID`` to a mail server.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import os
import smtplib
import ssl
from base64 import b64encode, encodebytes
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, unquote, urlsplit

from fleet.core.escaping import CsvWriter

__all__ = [
    "AppriseTransport",
    "CallListTransport",
    "FolderTransport",
    "Outgoing",
    "SmtpTransport",
    "Transport",
    "TransportError",
    "email_bytes",
    "message_id",
    "transport_for",
    "transports",
]


class TransportError(Exception):
    """A send failed; ``retryable`` when trying again later may work; ``unreachable``
    when the server could not be reached at all (every message would fail alike)."""

    def __init__(self, message: str, *, retryable: bool = True, unreachable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.unreachable = unreachable


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message as a transport sees it."""

    id: int
    code: str
    merchant_id: str
    merchant: str
    channel: str
    address: str
    subject: str
    body: str
    created_at: datetime
    sender: str


def message_id(out: Outgoing) -> str:
    """The email ``Message-ID``: the same on every attempt of one message."""
    return f"<notice-{out.id}.{out.code}@posfleet>"


class Transport(Protocol):
    name: str
    """How it delivers, without secrets (kept with each message)."""

    def send(self, out: Outgoing) -> str:
        """Deliver; return the transport's reference. Raises :class:`TransportError`."""
        ...

    def close(self) -> None: ...


def _write_once(path: Path, data: bytes) -> bool:
    """Write ``path`` atomically unless it exists; True when written now."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return True


_B_CHUNK = 39
"""UTF-8 bytes per RFC 2047 encoded word: 52 base64 characters, 64 with ``=?utf-8?b?…?=``,
so that ``Subject: `` and the first word stay within 78 characters."""


def _header(text: str) -> str:
    """A header value as it goes on the wire: as it is when it is short printable ASCII
    (no ``=?``), else RFC 2047 encoded words (base64 of UTF-8, never splitting a
    character), one per folded line."""
    if text.isascii() and text.isprintable() and "=?" not in text and len(text) <= 64:
        return text
    words: list[str] = []
    chunk: list[str] = []
    size = 0
    for ch in text:
        n = len(ch.encode())
        if size + n > _B_CHUNK:
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(ch)
        size += n
    words.append("".join(chunk))
    return "\r\n ".join(f"=?utf-8?b?{b64encode(w.encode()).decode()}?=" for w in words)


def email_bytes(out: Outgoing, linesep: str = "\r\n") -> bytes:
    r"""The email (text/plain, UTF-8, base64 body), as bytes with ``linesep`` line ends
    (SMTP: CRLF; smtplib sends bytes as they are).

    Written directly rather than through :mod:`email`'s classes, whose header handling
    and generator cost more per message than the rest of a send (about 0.3–0.9 ms; the
    notices benchmark). Every header value is printable ASCII or RFC 2047 encoded
    (:func:`_header`), so nothing from data can add a header line.

    >>> from datetime import UTC, datetime
    >>> out = Outgoing(7, "7KQ2M-9XD4T", "M1", "Shop", "email", "a@b.example", "Fees (ref X)",
    ...                "Dear Shop,\n", datetime(2027, 3, 1, tzinfo=UTC), "n@p.example")
    >>> print(email_bytes(out, "\n").decode())  # doctest: +NORMALIZE_WHITESPACE
    Content-Type: text/plain; charset="utf-8"
    MIME-Version: 1.0
    Content-Transfer-Encoding: base64
    From: n@p.example
    To: a@b.example
    Subject: Fees (ref X)
    Date: Mon, 01 Mar 2027 00:00:00 +0000
    Message-ID: <notice-7.7KQ2M-9XD4T@posfleet>
    Auto-Submitted: auto-generated
    X-Posfleet-Reference: 7KQ2M-9XD4T
    <BLANKLINE>
    RGVhciBTaG9wLAo=
    """
    head = linesep.join(
        (
            'Content-Type: text/plain; charset="utf-8"',
            "MIME-Version: 1.0",
            "Content-Transfer-Encoding: base64",
            f"From: {_header(out.sender)}",
            f"To: {_header(out.address)}",
            f"Subject: {_header(out.subject)}",
            f"Date: {format_datetime(out.created_at)}",
            f"Message-ID: {message_id(out)}",
            "Auto-Submitted: auto-generated",
            f"X-Posfleet-Reference: {_header(out.code)}",
            "",
            "",
        )
    ).replace("\r\n", linesep)
    body = encodebytes(out.body.encode())
    if linesep != "\n":
        body = body.replace(b"\n", linesep.encode())
    return head.encode("ascii") + body


class FolderTransport:
    """Files in a folder: ``<root>/<channel>/<date>/<code>.eml|.txt`` (atomic, once)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.name = f"folder:{root}"

    def send(self, out: Outgoing) -> str:
        day = out.created_at.date().isoformat()
        if out.channel == "email":
            path = self.root / "email" / day / f"{out.code}.eml"
            data = email_bytes(out, "\n")
        else:
            path = self.root / out.channel / day / f"{out.code}.txt"
            data = f"To: {out.address}\n\n{out.body}\n".encode()
        try:
            _write_once(path, data)
        except OSError as exc:
            raise TransportError(f"{path}: {exc.strerror or exc}") from exc
        return str(path)

    def close(self) -> None:
        pass


class CallListTransport:
    """Call-centre work lists: ``<root>/calls/<date>.csv``, one row per message, once."""

    COLUMNS = ("reference", "merchant_id", "merchant", "phone", "queued_at", "script")

    def __init__(self, root: Path) -> None:
        self.root = root
        self.name = f"calls:{root / 'calls'}"

    def send(self, out: Outgoing) -> str:
        path = self.root / "calls" / f"{out.created_at.date().isoformat()}.csv"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a+", encoding="utf-8", newline="") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)  # one writer at a time, across processes
                fh.seek(0)
                rows = list(csv.reader(fh))
                if any(row and row[0] == out.code for row in rows):
                    return f"{path}#{out.code}"  # already on the list (a re-send)
                writer = CsvWriter(fh)
                if not rows:
                    writer.header(self.COLUMNS)
                writer.row(
                    [out.code, out.merchant_id, out.merchant, out.address,
                     out.created_at.isoformat(), out.body]
                )  # fmt: skip
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise TransportError(f"{path}: {exc.strerror or exc}") from exc
        return f"{path}#{out.code}"

    def close(self) -> None:
        pass


class SmtpTransport:
    """Email over one SMTP connection, reopened when the server drops it."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps", "smtp+starttls") or not parts.hostname:
            raise ValueError(f"{url!r}: want smtp://host[:port], smtp+starttls://… or smtps://…")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or {"smtp": 25, "smtps": 465, "smtp+starttls": 587}[parts.scheme]
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout = timeout
        self.name = f"{parts.scheme}://{self.host}:{self.port}"
        self.url = url
        self._smtp: smtplib.SMTP | None = None

    def clone(self) -> SmtpTransport:
        """The same server on a connection of its own (a dispatcher's other senders)."""
        return SmtpTransport(self.url, timeout=self.timeout)

    def _connect(self) -> smtplib.SMTP:
        if self._smtp is None:
            try:
                if self.scheme == "smtps":
                    smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                        self.host, self.port, timeout=self.timeout,
                        context=ssl.create_default_context(),
                    )  # fmt: skip
                else:
                    smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
                    if self.scheme == "smtp+starttls":
                        smtp.starttls(context=ssl.create_default_context())
                if self.user:
                    smtp.login(self.user, self.password or "")
            except (OSError, smtplib.SMTPException) as exc:
                raise TransportError(
                    f"{self.name}: cannot connect: {exc}", unreachable=True
                ) from exc
            self._smtp = smtp
        return self._smtp

    def send(self, out: Outgoing) -> str:
        data = email_bytes(out)
        for attempt in (1, 2):  # a dropped idle connection gets one reconnect
            smtp = self._connect()
            try:
                smtp.sendmail(out.sender, [out.address], data)
                return message_id(out)
            except smtplib.SMTPServerDisconnected as exc:
                self._smtp = None
                if attempt == 2:
                    raise TransportError(f"{self.name}: {exc}") from exc
            except smtplib.SMTPRecipientsRefused as exc:
                raise TransportError(
                    f"{self.name}: recipient {out.address} refused", retryable=False
                ) from exc
            except smtplib.SMTPResponseException as exc:
                self.close()
                raise TransportError(
                    f"{self.name}: {exc.smtp_code} {exc.smtp_error!r}",
                    retryable=exc.smtp_code < 500,
                ) from exc
            except (OSError, smtplib.SMTPException) as exc:
                self.close()
                raise TransportError(f"{self.name}: {exc}") from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._smtp is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._smtp.quit()
            self._smtp = None


_REFERENCE_SCHEMES = frozenset({"json", "jsons", "form", "forms", "xml", "xmls"})
"""Apprise's plain-HTTP forms: each send carries the message's code in an
``X-Posfleet-Reference`` header, for the provider to return in its status callbacks
(:mod:`fleet.notices.receipts` finds the message by it)."""


class AppriseTransport:
    """Any Apprise URL; ``{phone}`` in it becomes the merchant's number (E.164)."""

    def __init__(self, url: str) -> None:
        import apprise  # noqa: PLC0415  (heavy: loaded only when SMS goes through Apprise)

        if "{phone}" not in url:
            raise ValueError(f"{url!r}: put {{phone}} where the merchant's number goes")
        probe = apprise.Apprise()
        if not probe.add(url.replace("{phone}", "10000000000")):
            raise ValueError(f"{url!r}: not a URL Apprise knows")
        self._apprise = apprise
        self.url = url
        parts = urlsplit(url)
        self.name = f"apprise:{parts.scheme}://{parts.hostname or ''}"

    def send(self, out: Outgoing) -> str:
        target = self.url.replace("{phone}", quote(out.address, safe=""))
        if urlsplit(target).scheme in _REFERENCE_SCHEMES:  # the provider echoes it back
            target += ("&" if "?" in target else "?") + f"+X-Posfleet-Reference={out.code}"
        sender = self._apprise.Apprise()
        sender.add(target)
        if not sender.notify(body=out.body, title=""):
            raise TransportError(f"{self.name}: the provider did not accept message {out.code}")
        return f"{self.name}#{out.code}"

    def close(self) -> None:
        pass


def transport_for(
    channel: str, *, outbox: Path, smtp: str | None = None, sms: str | None = None
) -> Transport:
    """The transport of ``channel``: SMTP / Apprise when given, else the outbox folder."""
    if channel == "email" and smtp:
        return SmtpTransport(smtp)
    if channel == "sms" and sms:
        return AppriseTransport(sms)
    if channel == "call":
        return CallListTransport(outbox)
    return FolderTransport(outbox)


def transports(
    *, outbox: Path, smtp: str | None = None, sms: str | None = None
) -> dict[str, Transport]:
    """A transport for every channel (:func:`transport_for`); a bad URL is an
    :class:`~fleet.core.errors.InputError`."""
    from fleet.core.errors import InputError  # noqa: PLC0415

    try:
        return {
            c: transport_for(c, outbox=outbox, smtp=smtp, sms=sms) for c in ("sms", "email", "call")
        }
    except ValueError as exc:
        raise InputError(str(exc)) from None
