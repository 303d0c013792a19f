"""The email as built for the wire reads back, through the standard library's parser,
as the message that was composed: every header, the subject and the body."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest

from fleet.notices.channels import Outgoing, email_bytes, message_id

_SUBJECTS = [
    "Your card fees change on 1 Mar 2027 (ref 7KQ2M-9XD4T)",
    "您的刷卡手续费将于2027年3月1日 00:00调整（编号 7KQ2M-9XD4T）",
    "A very long subject " * 8 + "(ref 7KQ2M-9XD4T)",
    "=?utf-8?q?looks_encoded?= but is not",
    "Two\r\nlines: Bcc: someone@evil.example",
    "Emoji 🎉 and ünïcödé " * 5,
    "",
]


@pytest.mark.parametrize("subject", _SUBJECTS)
@pytest.mark.parametrize("linesep", ["\r\n", "\n"])
def test_the_wire_bytes_parse_back_to_the_message(subject: str, linesep: str) -> None:
    out = Outgoing(
        42, "7KQ2M-9XD4T", "M1", "Shop", "email", "li@example.cn",
        subject, "Dear 李先生,\n\n" + "Your card fees change. 您的费率调整。\n" * 40,
        datetime(2027, 3, 1, 8, 30, tzinfo=UTC), "notices@posfleet.example",
    )  # fmt: skip
    raw = email_bytes(out, linesep)
    lines = raw.split(linesep.encode())
    assert all(len(line) <= 78 for line in lines)
    if linesep == "\r\n":
        assert b"\n" not in raw.replace(b"\r\n", b"")
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert mail.defects == []
    assert str(mail["Subject"]) == subject
    assert mail["From"] == "notices@posfleet.example" and mail["To"] == "li@example.cn"
    assert mail["Message-ID"] == message_id(out) == "<notice-42.7KQ2M-9XD4T@posfleet>"
    assert mail["X-Posfleet-Reference"] == "7KQ2M-9XD4T"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["Date"].datetime == out.created_at
    assert mail.get_content_type() == "text/plain" and mail.get_content_charset() == "utf-8"
    assert mail.get_content() == out.body
    assert "Bcc" not in mail
