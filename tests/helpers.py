"""Shared test helpers.

``common`` checks parse, build and size of a construct in one line, as construct's own
test-suite does; every wire structure in ``protocols`` is checked with it.
"""

from __future__ import annotations

from typing import Any


def common(con: Any, data: bytes, obj: Any, size: int | None = None, **ctx: Any) -> None:
    """Assert ``con`` parses ``data`` to ``obj``, builds ``obj`` back to ``data`` and has ``size``.

    ``size`` defaults to ``len(data)``; pass ``size=-1`` for structures whose size is not
    static (``sizeof`` must then raise).
    """
    parsed = con.parse(data, **ctx)
    assert parsed == obj, f"parse: {parsed!r} != {obj!r}"
    built = con.build(obj, **ctx)
    assert built == data, f"build: {built!r} != {data!r}"
    if size == -1:
        return
    assert con.sizeof(**ctx) == (len(data) if size is None else size)
