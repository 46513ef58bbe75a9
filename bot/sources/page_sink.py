"""Where the paging code hands each page of items as it arrives (issue #16).

A job sets :data:`page_sink` around its fetch step (``bot.features.prefetch.feeding``) so the
features of a page can be asked for while later pages are still being read. Context
variables follow the tasks the fetch starts, so concurrent jobs never see each other's pages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import Any

#: Called with each page's converted items, in arrival order.
PageSink = Callable[[Sequence[Any]], None]
page_sink: ContextVar[PageSink | None] = ContextVar("page_sink", default=None)


def emit_page(items: Sequence[Any]) -> None:
    """Hand a page that just arrived to the current job's sink (if any)."""
    sink = page_sink.get()
    if sink is not None:
        sink(items)
