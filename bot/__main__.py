"""``python -m bot``: the Discord bot when DISCORD_TOKEN is set, else the offline demo.

``python -m bot analyze …`` / ``python -m bot demo …`` are the offline CLI (:mod:`bot.cli`).
The bot (and so discord) is imported only on the bot path.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from bot import cli

    if argv:
        return cli.main(argv)
    from bot.config import get_settings

    settings = get_settings()
    token = settings.discord_token.get_secret_value() if settings.discord_token else ""
    if token.strip():
        import asyncio

        from bot.app import run_bot

        asyncio.run(run_bot(settings))
        return 0
    print(
        "DISCORD_TOKEN is not set, so the bot is not started; running the offline demo instead.",
        file=sys.stderr,
    )
    return cli.main(["demo"], settings=settings)


if __name__ == "__main__":
    sys.exit(main())
