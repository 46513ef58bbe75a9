"""Placeholder: filled in by its own work item."""

from __future__ import annotations


async def setup(bot) -> None:
    return None
