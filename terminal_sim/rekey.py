"""The terminal's MAC keys and the rules of a key change (docs/protocol.md), without I/O.

A terminal holds a **current** key and, between a key change (0800/161) and its
confirmation (0800/162), a **next** key. :class:`KeySlots` is that pair; the functions
here decide what a request does to it. :class:`~terminal_sim.terminal.Terminal` stores
the outcome in the transaction that answers the request.

Which key checks a request (and signs its response: always the key that verified it):

===================  ===============================  ==================================
request              current only                     current + next pending
===================  ===============================  ==================================
360, 361 (tables)    current                          current or next
161 key change       current                          current
162 confirmation     current (already confirmed:      next (the switch), or current
                     ``00``, nothing changes)         (confirming the current: ``00``)
===================  ===============================  ==================================

A request no held key verifies is answered ``A0`` (signed with the current key) and changes
nothing: once the next key is confirmed, the old one is gone and refused.

>>> from protocols.mac import TerminalKey, key_check_value
>>> old, new = TerminalKey(1, bytes(16)), TerminalKey(2, bytes(range(16)))
>>> slots = KeySlots(old)
>>> d = decide_change(slots, KeyChange.build(old, new))
>>> d.code.value, d.slots.versions
('00', KeyVersions(current=1, next=2))
>>> d = decide_confirm(d.slots, KeyConfirm(2), verified_by=new)
>>> d.code.value, d.slots.versions, d.slots.next is None
('00', KeyVersions(current=2, next=0), True)
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from protocols.codec import Message
from protocols.errors import MacError
from protocols.keys import KeyChange, KeyConfirm, KeyVersions
from protocols.mac import TerminalKey
from protocols.messages import NetCode, ResponseCode, verify

__all__ = ["KeyDecision", "KeySlots", "decide_change", "decide_confirm"]

RC = ResponseCode


@dataclass(frozen=True, slots=True)
class KeySlots:
    """The keys a terminal holds: the current one and, during a change, the next one."""

    current: TerminalKey
    next: TerminalKey | None = None

    @property
    def versions(self) -> KeyVersions:
        return KeyVersions(self.current.version, self.next.version if self.next else 0)

    def candidates(self, code: NetCode) -> tuple[TerminalKey, ...]:
        """The keys that may verify a signed request with network code ``code``."""
        if code is NetCode.KEY_CHANGE or self.next is None:
            return (self.current,)
        if code is NetCode.KEY_CONFIRM:
            return (self.next, self.current)
        return (self.current, self.next)

    def verifier(self, request: Message, code: NetCode) -> TerminalKey | None:
        """The held key whose MAC ``request`` carries (None: no key of ours)."""
        for key in self.candidates(code):
            try:
                verify(request, key.key)
            except MacError:
                continue
            return key
        return None


@dataclass(frozen=True, slots=True)
class KeyDecision:
    """The answer to a key request and the keys held afterwards."""

    code: ResponseCode
    slots: KeySlots
    why: str

    @property
    def changed(self) -> bool:
        return self.code is RC.APPROVED and self.why in ("stored", "switched")


def decide_change(slots: KeySlots, change: KeyChange) -> KeyDecision:
    """A 0800/161 that the current key verified (tamper and replays are checked before).

    ``76`` a version not above the current one (or below the next one, or the next
    version with another key); ``F2`` the unwrap or the check value fails; ``12`` the new
    key is the current key; ``00`` the next key is stored (replacing an older next key)
    or was already stored (the same request again, after a crash or a lost response).
    """
    current, nxt = slots.current, slots.next
    if change.version <= current.version:
        return _no(RC.VERSION_REFUSED, slots, f"version {change.version} ≤ current")
    if nxt is not None and change.version < nxt.version:
        return _no(RC.VERSION_REFUSED, slots, f"version {change.version} < next {nxt.version}")
    try:
        key = change.unwrap(current.key)
    except MacError as exc:
        return _no(RC.KEY_CHECK_FAILED, slots, exc.reason)
    if hmac.compare_digest(key, current.key):
        return _no(RC.INVALID_REQUEST, slots, "the new key is the current key")
    if nxt is not None and change.version == nxt.version:
        if hmac.compare_digest(key, nxt.key):
            return KeyDecision(RC.APPROVED, slots, "already stored")
        return _no(RC.VERSION_REFUSED, slots, f"version {nxt.version} is pending with another key")
    return KeyDecision(RC.APPROVED, KeySlots(current, TerminalKey(change.version, key)), "stored")


def decide_confirm(
    slots: KeySlots, confirm: KeyConfirm, *, verified_by: TerminalKey
) -> KeyDecision:
    """A 0800/162 that ``verified_by`` (one of the held keys) verified.

    Signed with the next key and naming its version: the next key becomes the current
    one and the old key is dropped (``00``). Signed with the current key and naming its
    version: already done (``00``, nothing changes). Any other version: ``12``.
    """
    if confirm.version != verified_by.version:
        return _no(
            RC.INVALID_REQUEST,
            slots,
            f"confirms version {confirm.version} but is signed with key {verified_by.version}",
        )
    if slots.next is not None and verified_by == slots.next:
        return KeyDecision(RC.APPROVED, KeySlots(slots.next), "switched")
    return KeyDecision(RC.APPROVED, slots, "already current")


def _no(code: ResponseCode, slots: KeySlots, why: str) -> KeyDecision:
    return KeyDecision(code, slots, why)
