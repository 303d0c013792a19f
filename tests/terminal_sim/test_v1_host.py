"""A v1 host against today's terminal: a third-party tool built only from the wire page
(pyiso8583 for the messages, a TLV reader that knows the v1 tags and skips the others,
AES-CMAC from ``cryptography``) signs on, pushes a fee table and sells, while the
terminal sends the health and key-version tags that posfleet added to v1."""

from __future__ import annotations

from typing import Any

import iso8583
import pytest
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import algorithms

from protocols.link import Link
from tests.protocols.test_codec import PYISO_SPEC
from tests.terminal_sim.conftest import KEY, MID, SERIAL, TID, Served, make_table

pytestmark = pytest.mark.timeout(60)
V1_TAGS = set(range(0x01, 0x0C))


def v1_tlv(hex_value: str) -> dict[int, bytes]:
    """§3 as a v1 reader implements it: tag, length, value; unknown tags skipped."""
    data, items, i = bytes.fromhex(hex_value), {}, 0
    while i < len(data):
        tag, length = data[i], data[i + 1]
        if tag in V1_TAGS:
            items[tag] = data[i + 2 : i + 2 + length]
        i += 2 + length
    return items


class V1Host:
    def __init__(self, link: Link) -> None:
        self.link = link
        self.stan = 100

    def _mac(self, doc: dict[str, Any]) -> dict[str, Any]:
        """§5: CMAC over the message with bit 64 set, up to the field before 64."""
        doc = {**doc, "64": "00" * 8}
        raw, _ = iso8583.encode(dict(doc), PYISO_SPEC)
        c = cmac.CMAC(algorithms.AES(KEY))
        c.update(bytes(raw[:-8]))
        doc["64"] = c.finalize()[:8].hex().upper()
        return doc

    def request(self, fields: dict[str, str], *, signed: bool = False) -> dict[str, Any]:
        self.stan += 1
        doc: dict[str, Any] = {"t": fields.pop("t"), "11": f"{self.stan:06d}", "41": TID}
        doc.update(fields)
        if signed:
            doc = self._mac(doc)
        raw, _ = iso8583.encode(doc, PYISO_SPEC)
        response, _ = iso8583.decode(self.link.request(bytes(raw)), PYISO_SPEC)
        assert response["11"] == doc["11"]
        if signed:
            assert self._mac({k: v for k, v in response.items() if k not in ("p", "64")}) == {
                k: v for k, v in response.items() if k != "p"
            }, "the response MAC"
        return response


def test_a_v1_host_works_against_a_terminal_sending_the_new_tags(served: Served) -> None:
    with Link(served.path, 115200) as link:
        host = V1Host(link)
        signed_on = host.request({"t": "0800", "60": "00000000001"})
        assert signed_on["39"] == "00" and signed_on["42"] == MID
        sent, i = [], 0
        raw = bytes.fromhex(signed_on["62"])
        while i < len(raw):
            sent.append(raw[i])
            i += 2 + raw[i + 1]
        # more than v1 sends: health (a PF-200 has no battery: no 0x10) and key versions
        assert set(sent) - V1_TAGS == set(range(0x11, 0x17)) | {0x20}
        items = v1_tlv(signed_on["62"])
        assert items[0x03] == SERIAL.encode() and items[0x02] == b"PF-200"
        assert int.from_bytes(items[0x05], "big") == 0

        table = make_table(5, rules=60)
        blocks = table.blocks()
        for index, data in enumerate(blocks):
            address = f"{5:08d}{index:04d}{len(blocks):04d}"
            rsp = host.request(
                {"t": "0800", "60": "00000000360", "61": address, "62": data.hex().upper()},
                signed=True,
            )
            assert rsp["39"] == "00" and rsp["61"] == f"{5:08d}{index + 1:04d}{len(blocks):04d}"
        commit = f"{5:08d}{len(blocks):04d}{len(blocks):04d}"
        rsp = host.request(
            {"t": "0800", "60": "00000000361", "61": commit, "62": table.digest().hex().upper()},
            signed=True,
        )
        assert rsp["39"] == "00"

        sale = host.request(
            {
                "t": "0200",
                "3": "000000",
                "4": "000000010000",
                "22": "051",
                "49": "156",
                "62": "010102",
            }
        )
        assert (sale["39"], sale["28"]) == ("00", "D00000060")
        assert v1_tlv(sale["62"])[0x09] == (9_940).to_bytes(8, "big")
        status = host.request({"t": "0800", "60": "00000000362"})
        assert int.from_bytes(v1_tlv(status["62"])[0x05], "big") == 5
        assert host.request({"t": "0800", "60": "00000000301"})["39"] == "00"
