"""Replacements a page at a time (the console's view), on SQLite and PostgreSQL: the pages
in a row are exactly the filtered flagging, in serial order, none twice or missing."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine

from fleet.core.errors import InputError
from fleet.core.policy import Policy
from fleet.replacements import due_page, flag

POLICY = Policy().replacement
AS_OF = date(2026, 11, 1)


@pytest.mark.parametrize(
    "filters", [{}, {"priority": 1}, {"priority": 2, "reason": "age"}, {"model": "PF-200"}]
)
def test_pages_walk_the_filtered_flagging(loaded: Engine, filters: dict[str, object]) -> None:
    every = [
        r.serial
        for r in flag(loaded, POLICY, AS_OF)
        if ("priority" not in filters or r.priority == filters["priority"])
        and ("reason" not in filters or any(x.code == filters["reason"] for x in r.reasons))
        and ("model" not in filters or r.model == filters["model"])
    ]
    assert every
    walked: list[str] = []
    after = None
    while True:
        page = due_page(loaded, POLICY, AS_OF, after=after, limit=7, **filters)  # type: ignore[arg-type]
        walked += [r.serial for r in page.items]
        if page.next_after is None:
            break
        assert page.next_after == walked[-1] and len(page.items) == 7
        after = page.next_after
    assert walked == every


def test_bad_page_requests(loaded: Engine) -> None:
    for kwargs, where in [({"limit": 0}, "limit"), ({"priority": 4}, "priority"),
                          ({"reason": "boredom"}, "reason")]:  # fmt: skip
        with pytest.raises(InputError) as err:
            due_page(loaded, POLICY, AS_OF, **kwargs)  # type: ignore[arg-type]
        assert err.value.where == where
