"""``python -m bot``: the Discord bot when DISCORD_TOKEN is set, else the offline demo.

``python -m bot analyze …`` / ``python -m bot demo …`` are the offline CLI (:mod:`bot.cli`).
``python -m bot worker`` runs analyses from the PostgreSQL queue (:mod:`bot.jobs.distributed`).
``python -m bot --version`` prints the version; ``python -m bot healthcheck`` exits 0 while a
running bot's heartbeat is fresh (the Docker HEALTHCHECK). The bot (and so discord) is imported
only on the bot path; ``--version`` and ``healthcheck`` import neither it nor the pipeline.
"""

from __future__ import annotations

import sys

CLI_COMMANDS = frozenset({"analyze", "demo"})
EXIT_CLI_USER_ERROR = 2  # bot.cli.EXIT_USER_ERROR, without importing the pipeline for it


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["--version"], ["-V"]):
        from bot import __version__

        print(f"playlist-clusters {__version__}")
        return 0
    if argv[:1] == ["healthcheck"]:
        from bot.startup import healthcheck_main

        return healthcheck_main()
    if argv and argv[0] not in CLI_COMMANDS | {"worker"}:
        from bot import cli

        return cli.main(argv)  # --help, or argparse's own error for an unknown command

    from bot.startup import StartupError, load_settings

    try:
        settings = load_settings()
    except StartupError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_CLI_USER_ERROR if argv else 1
    if argv[:1] == ["worker"]:
        from bot.worker_main import worker_main

        return worker_main(settings, argv[1:])
    if argv:
        from bot import cli

        return cli.main(argv, settings=settings)
    token = settings.discord_token.get_secret_value() if settings.discord_token else ""
    if token.strip():
        from bot.startup import run

        return run(settings)
    print(
        "DISCORD_TOKEN is not set, so the bot is not started; running the offline demo instead.",
        file=sys.stderr,
    )
    from bot import cli

    return cli.main(["demo"], settings=settings)


if __name__ == "__main__":
    sys.exit(main())
