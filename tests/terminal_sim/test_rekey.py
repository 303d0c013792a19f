"""The key-change rules of the terminal (terminal_sim.rekey), without I/O: which key checks
which request, and what a change or a confirmation does to the keys held."""

from __future__ import annotations

import pytest

from protocols import messages as m
from protocols.keys import KeyChange, KeyConfirm, KeyVersions
from protocols.mac import TerminalKey
from terminal_sim.rekey import KeySlots, decide_change, decide_confirm
from tests.terminal_sim.conftest import config

K1 = TerminalKey(1, bytes([1]) * 16)
K2 = TerminalKey(2, bytes([2]) * 16)
K3 = TerminalKey(3, bytes([3]) * 16)
FOREIGN = TerminalKey(2, bytes([9]) * 16)
TID = "TERM0042"
RC = m.ResponseCode


def _signed(code: m.NetCode, key: TerminalKey) -> m.Message:
    builders = {
        m.NetCode.BLOCK: lambda: m.block(1, TID, 5, 0, 1, b"FEE1"),
        m.NetCode.COMMIT: lambda: m.commit(1, TID, 5, 1, bytes(32)),
        m.NetCode.KEY_CHANGE: lambda: m.key_change(1, TID, KeyChange.build(K1, K2).to_tlv()),
        m.NetCode.KEY_CONFIRM: lambda: m.key_confirm(1, TID, KeyConfirm(2).to_tlv()),
    }
    return m.sign(builders[code](), key.key)


@pytest.mark.parametrize(
    ("slots", "code", "accepted"),
    [
        (KeySlots(K1), m.NetCode.BLOCK, {1}),
        (KeySlots(K1), m.NetCode.KEY_CHANGE, {1}),
        (KeySlots(K1), m.NetCode.KEY_CONFIRM, {1}),
        (KeySlots(K1, K2), m.NetCode.BLOCK, {1, 2}),
        (KeySlots(K1, K2), m.NetCode.COMMIT, {1, 2}),
        (KeySlots(K1, K2), m.NetCode.KEY_CHANGE, {1}),  # the wrap is under the current key
        (KeySlots(K1, K2), m.NetCode.KEY_CONFIRM, {1, 2}),
        (KeySlots(K2), m.NetCode.BLOCK, {2}),  # after the switch: the old key is refused
        (KeySlots(K2), m.NetCode.KEY_CONFIRM, {2}),
    ],
)
def test_which_keys_verify_which_request(
    slots: KeySlots, code: m.NetCode, accepted: set[int]
) -> None:
    got = set()
    for key in (K1, K2, K3, FOREIGN):
        verifier = slots.verifier(_signed(code, key), code)
        if verifier is not None:
            assert verifier == key  # the response is signed with the key that verified
            got.add(verifier.version)
    assert got == accepted


def test_change_stores_the_next_key_and_keeps_the_current() -> None:
    d = decide_change(KeySlots(K1), KeyChange.build(K1, K2))
    assert (d.code, d.slots, d.changed) == (RC.APPROVED, KeySlots(K1, K2), True)
    assert d.slots.versions == KeyVersions(1, 2)


def test_the_same_change_again_is_answered_00_and_changes_nothing() -> None:
    d = decide_change(KeySlots(K1, K2), KeyChange.build(K1, K2))
    assert (d.code, d.slots, d.changed) == (RC.APPROVED, KeySlots(K1, K2), False)


def test_a_newer_change_replaces_a_pending_next_key() -> None:
    d = decide_change(KeySlots(K1, K2), KeyChange.build(K1, K3))
    assert (d.code, d.slots) == (RC.APPROVED, KeySlots(K1, K3))


@pytest.mark.parametrize(
    ("slots", "change", "code"),
    [
        (KeySlots(K2), KeyChange.build(K2, K1), RC.VERSION_REFUSED),  # older
        (KeySlots(K2), KeyChange.build(K2, TerminalKey(2, K3.key)), RC.VERSION_REFUSED),  # same
        (KeySlots(K1, K3), KeyChange.build(K1, K2), RC.VERSION_REFUSED),  # below the next
        (KeySlots(K1, K2), KeyChange.build(K1, FOREIGN), RC.VERSION_REFUSED),  # next, other key
        (KeySlots(K1), KeyChange.build(FOREIGN, K2), RC.KEY_CHECK_FAILED),  # wrapped elsewhere
        (
            KeySlots(K1),
            KeyChange(2, KeyChange.build(K1, K2).wrapped, b"\0\0\0"),
            RC.KEY_CHECK_FAILED,
        ),
        (KeySlots(K1), KeyChange.build(K1, TerminalKey(2, K1.key)), RC.INVALID_REQUEST),
    ],
)
def test_refused_changes_leave_the_keys_as_they_were(
    slots: KeySlots, change: KeyChange, code: m.ResponseCode
) -> None:
    d = decide_change(slots, change)
    assert d.code is code
    assert d.slots == slots and not d.changed


def test_confirm_with_the_next_key_switches_and_drops_the_old() -> None:
    d = decide_confirm(KeySlots(K1, K2), KeyConfirm(2), verified_by=K2)
    assert (d.code, d.slots, d.changed) == (RC.APPROVED, KeySlots(K2), True)
    assert d.slots.versions == KeyVersions(2, 0)


@pytest.mark.parametrize(
    ("slots", "confirm", "by", "code"),
    [
        (KeySlots(K2), KeyConfirm(2), K2, RC.APPROVED),  # already switched: a host resending
        (KeySlots(K1, K2), KeyConfirm(1), K1, RC.APPROVED),  # confirming the current: no-op
        (KeySlots(K1, K2), KeyConfirm(2), K1, RC.INVALID_REQUEST),  # signed with the old key
        (KeySlots(K1, K2), KeyConfirm(3), K2, RC.INVALID_REQUEST),
        (KeySlots(K1), KeyConfirm(2), K1, RC.INVALID_REQUEST),
    ],
)
def test_confirmations_that_change_nothing(
    slots: KeySlots, confirm: KeyConfirm, by: TerminalKey, code: m.ResponseCode
) -> None:
    d = decide_confirm(slots, confirm, verified_by=by)
    assert d.code is code
    assert d.slots == slots and not d.changed


def test_never_a_terminal_without_a_working_key() -> None:
    """Every path through change and confirm, in every order, with repeats: the keys held
    always include a current key, and it is one the host knows."""
    host_keys = {K1, K2, K3}
    steps = [
        lambda s: decide_change(s, KeyChange.build(s.current, K2)).slots,
        lambda s: decide_change(s, KeyChange.build(s.current, K3)).slots,
        lambda s: decide_confirm(s, KeyConfirm(2), verified_by=K2).slots if s.next == K2 else s,
        lambda s: decide_confirm(s, KeyConfirm(3), verified_by=K3).slots if s.next == K3 else s,
    ]
    frontier = {KeySlots(K1)}
    seen: set[KeySlots] = set()
    while frontier:
        slots = frontier.pop()
        seen.add(slots)
        assert slots.current in host_keys
        for step in steps:
            nxt = step(slots)
            if nxt not in seen:
                frontier.add(nxt)
    assert KeySlots(K3) in seen and KeySlots(K2) in seen


def test_no_key_in_the_reprs_of_the_terminal_side() -> None:
    cfg = config()
    for text in (repr(cfg), repr(KeySlots(K1, K2)), str(KeySlots(K1, K2))):
        for key in (cfg.key, K1.key, K2.key):
            assert key.hex() not in text.lower() and repr(key) not in text
