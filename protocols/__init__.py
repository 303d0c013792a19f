"""posfleet's wire layer: the fleet ↔ terminal protocol of ``shared/wire-protocol.md`` (v1).

Modules, from the bytes up:

* :mod:`protocols.framing` - STX/LEN/BODY/ETX/LRC frames: encoder and incremental decoder (pure).
* :mod:`protocols.linkurl` - the allow-list of link URLs (devices, socket://, rfc2217://).
* :mod:`protocols.link` - ACK/NAK, T1/T2, resends and duplicate handling over pyserial.
* :mod:`protocols.pty` - virtual serial ports (one pty, or a null-modem pair) with no tool.
* :mod:`protocols.spec` - the ISO 8583 field table, declared once.
* :mod:`protocols.codec` - ISO 8583 messages with ``construct`` (compiled).
* :mod:`protocols.messages` - the message catalog: builders, readers, response codes, MAC.
* :mod:`protocols.tlv` - the TLV list of field 62.
* :mod:`protocols.values` - card types, capabilities and the wire's time (Unix seconds, UTC).
* :mod:`protocols.feetable` - the fee-table file and the one fee function both sides use.
* :mod:`protocols.mac` - AES-CMAC and the SP 800-108 per-terminal key derivation.
* :mod:`protocols.errors` - the typed errors; everything raised here is a ``ProtocolError``.

It imports nothing else of posfleet's.
"""
