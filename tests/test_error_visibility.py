"""README: "Every error the pipeline types … is explained privately". One exception, on purpose."""

from __future__ import annotations

import importlib
import pkgutil

import bot
from bot.errors import PipelineError

# Public on purpose: it promises the result in the channel, where the resumed job posts it.
PUBLIC = {"JobInterrupted"}


def _all_subclasses(cls: type) -> set[type]:
    out = set()
    for sub in cls.__subclasses__():
        out |= {sub} | _all_subclasses(sub)
    return out


def test_every_typed_error_is_private_except_the_restart_notice() -> None:
    for info in pkgutil.walk_packages(bot.__path__, "bot."):
        if info.name != "bot.__main__":
            importlib.import_module(info.name)
    errors = {cls.__name__: cls for cls in _all_subclasses(PipelineError)}
    assert {"QuotaExceeded", "SpotifyUnavailable", "StorageError", "JobCrashed"} <= set(errors)
    public = {name for name, cls in errors.items() if not cls.ephemeral}
    assert public == PUBLIC, f"shown publicly, but the README promises private: {public - PUBLIC}"
