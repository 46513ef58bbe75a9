"""Offline command line: ``python -m bot analyze <link|csv> [--k N] [--out DIR]`` and
``python -m bot demo [--k N] [--out DIR]``.

Writes clusters.png, report.md, tracks.csv and summary.json, then prints one line per cluster
and where the features came from. Never imports discord. Errors the user can act on
(:class:`bot.errors.PipelineError`) are printed as one message on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from bot import render
from bot.config import Settings, get_settings
from bot.errors import InvalidInput, PipelineError, TooLarge
from bot.jobs.cpu import cluster_step, render_step
from bot.models import ARTEFACTS, Analysis, AnalysisRequest, Progress, Rendered
from bot.pipeline import (
    PipelineContext,
    features_from_tracks,
    featurize_step,
    fetch_step,
    with_parsed_link,
)

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description=(
            "Playlist Clusters: cluster a Spotify playlist's tracks by sound. Without a "
            "subcommand: runs the Discord bot when DISCORD_TOKEN is set, else the offline demo."
        ),
        epilog=(
            "also: python -m bot --version; python -m bot healthcheck (exit 0 while a running "
            "bot's heartbeat is fresh: Docker's HEALTHCHECK); python -m bot worker --help (runs "
            "analyses from the PostgreSQL queue). Settings come from the environment and ./.env "
            "(README.md, Configuration)."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="{analyze,demo}")
    analyze = sub.add_parser(
        "analyze",
        help="analyse a playlist/album link (needs Spotify credentials) or an Exportify CSV",
    )
    analyze.add_argument(
        "source",
        help="playlist or album link/URI/id, or the path of a CSV from exportify.net or "
        "exportify.app (any of its languages); - reads the CSV from standard input",
    )
    demo = sub.add_parser("demo", help="analyse the bundled real playlist mix (no network)")
    for p in (analyze, demo):
        p.add_argument("--k", type=int, default=None, help="number of clusters (default: auto)")
        p.add_argument("--out", type=Path, default=None, help="output folder (./out/<name>)")
    return parser


def slugify(text: str) -> str:
    """The default output folder's name: letters and digits of any script, "-" between words
    (ASCII only made every Japanese, Greek or Cyrillic playlist "playlist", so each run
    overwrote the last one's files)."""
    slug = re.sub(r"[\W_]+", "-", text.casefold()).strip("-")
    return slug[:60].strip("-") or "playlist"


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. "File name too long" for a 300-character argument: not a file
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


# How a file name ends ("list.txt", "playlist.xlsx"); a Spotify link or id never does.
_FILE_SUFFIX = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,4}$")


def _looks_like_a_path(source: str) -> bool:
    """A mistyped file name rather than a link: a folder part or a file extension, and nothing
    of a link (a scheme, ``spotify:``, spotify.com, a short-link host; "spotify_favs.txt" is a
    file name)."""
    from bot.sources.links import is_short_link

    low = source.lower()
    if "://" in low or "spotify:" in low or "spotify.com" in low or is_short_link(source):
        return False
    return "/" in source or "\\" in source or _FILE_SUFFIX.search(source) is not None


def request_for(args: argparse.Namespace) -> AnalysisRequest:
    if args.command == "demo":
        return AnalysisRequest(demo=True, k=args.k)
    source: str = args.source
    if source == "-":  # `python -m bot analyze - < playlist.csv`, or piped from another tool
        from bot.sources.exportify import MAX_CSV_BYTES, decode_csv

        data = sys.stdin.buffer.read(MAX_CSV_BYTES + 1)
        return AnalysisRequest(csv_text=decode_csv(data), csv_name="stdin", k=args.k)
    if source.lower().startswith("file://"):  # a file dragged from a browser's downloads list
        from urllib.parse import urlsplit
        from urllib.request import url2pathname

        source = url2pathname(urlsplit(source).path)  # decodes %20 and the like
    path = Path(source)
    if _is_dir(path):
        raise InvalidInput(
            f"{_shorten(source)} is a folder: give the path of the Exportify .csv file in it."
        )
    if path.suffix.lower() == ".csv" or _is_file(path):
        from bot.sources.exportify import read_csv_file

        try:
            text = read_csv_file(path)
        except OSError as exc:
            raise InvalidInput(f"Cannot read {_shorten(source)}: {exc.strerror or exc}.") from exc
        return AnalysisRequest(csv_text=text, csv_name=path.name, k=args.k)
    if _looks_like_a_path(source):
        raise InvalidInput(
            f"There is no file {_shorten(source)} (and it isn't a Spotify link either): check "
            "the path of the Exportify .csv file."
        )
    return AnalysisRequest(link=source, k=args.k)


def _network_context(ctx: PipelineContext) -> None:
    """Add the Spotify/ReccoBeats clients and a feature cache (only when really needed)."""
    from bot.features.cache import MemoryFeatureCache

    settings = ctx.settings
    ctx.feature_cache = ctx.feature_cache or MemoryFeatureCache()
    if ctx.spotify is None and settings.spotify_configured:
        from bot.sources.spotify import SpotifyGateway

        ctx.spotify = SpotifyGateway(settings)
    if ctx.reccobeats is None and settings.reccobeats_enabled:
        from bot.features.reccobeats import ReccoBeatsClient

        ctx.reccobeats = ReccoBeatsClient(
            settings.reccobeats_base, timeout_s=settings.reccobeats_timeout_s
        )
    if ctx.pages is None:
        from bot.sources.public_page import PublicPageReader

        ctx.pages = PublicPageReader.from_settings(settings)  # public pages, short links


def progress_printer() -> Callable[[Progress], Awaitable[None]]:
    """Prints "fetching: 2000/10000" lines to stderr: only forwards (the feature steps report
    per source, so the raw events went 0/94, 0/94, 94/94, 61/94) and in steps of a tenth or
    more (a 10,000-track file without audio columns printed 250 lines, one per request)."""
    shown: dict[str, int] = {}

    async def progress(event: Progress) -> None:
        done, total = event.done or 0, event.total
        if event.stage not in ("fetching", "featurizing") or not total:
            return
        last = shown.get(event.stage)
        if last is None or (done > last and (done >= total or done - last >= total / 10)):
            shown[event.stage] = done
            print(f"{event.stage}: {done:,}/{total:,}", file=sys.stderr)

    return progress


class _Once(logging.Filter):
    """Lets each distinct warning through once: offline, a 10,000-track file without audio
    columns logged "ReccoBeats request failed: ClientConnectorDNSError" 250 times."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.getMessage())
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


async def _run(settings: Settings, request: AnalysisRequest) -> tuple[Analysis, Rendered]:
    """The pipeline steps; CSV files with audio columns and the demo never touch the network."""
    ctx = PipelineContext(settings=settings)
    progress = progress_printer()
    try:
        if request.link is not None:
            request = with_parsed_link(request)  # a bad link fails before any client is built
            _network_context(ctx)
        fetched = await fetch_step(request, ctx, progress)
        if features_from_tracks(fetched.tracks) is None:
            _network_context(ctx)
        features = await featurize_step(fetched, ctx, progress)
        analysis = cluster_step(fetched, features, request.k)
        rendered = render_step(analysis)  # the Discord chart; the files get the legend too
        return analysis, replace(rendered, png=render.render_scatter(analysis, legend=True))
    finally:
        if ctx.reccobeats is not None:
            await ctx.reccobeats.close()
        if ctx.pages is not None:
            await ctx.pages.close()


def write_outputs(rendered: Rendered, out: Path) -> list[Path]:
    """Write the artefacts into ``out``; raises OSError (unwritable folder, full disk).

    Each file goes to a temporary name first and all are renamed into place only once every
    one was written, so a full disk never leaves a truncated clusters.png behind (and an
    earlier run's files stay whole).
    """
    out.mkdir(parents=True, exist_ok=True)
    contents: dict[str, bytes] = {
        ARTEFACTS.png: rendered.png,
        ARTEFACTS.markdown: rendered.markdown.encode("utf-8"),
        ARTEFACTS.csv: rendered.csv.encode("utf-8"),
        ARTEFACTS.summary: json.dumps(rendered.summary, indent=2, ensure_ascii=False).encode(),
        ARTEFACTS.profile: rendered.profile_png,
    }
    temps: dict[str, Path] = {}
    try:
        for name, data in contents.items():
            temps[name] = out / f".{name}.{os.getpid()}.tmp"
            temps[name].write_bytes(data)
        for name, tmp in temps.items():
            os.replace(tmp, out / name)
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)  # gone already when renamed
    return [out / name for name in contents]


def print_table(analysis: Analysis) -> None:
    from bot.render import coverage_sentence, skipped_sentence
    from bot.sources.link_reader import NO_LINKING, public_page_note

    print(f"{analysis.source.name}: {len(analysis.assignments)} tracks, k = {analysis.k}")
    print(f"{'#':>3}  {'size':>5}  description")
    for c in analysis.clusters:
        print(f"{c.index + 1:>3}  {c.size:>5}  {c.description}")
    print(coverage_sentence(analysis))
    skipped = skipped_sentence(analysis)
    if skipped:
        print(skipped)
    shown = len(analysis.tracks) + sum(analysis.skipped.values())
    note = public_page_note(analysis.source, shown, reader=NO_LINKING)
    if note:
        print(f"Note: {for_terminal(note)}.")


# The pipeline's messages are written for Discord ("attach that file", "`/spotify link`"); in a
# terminal they say what to run instead. One table, applied to every error the CLI prints.
_ANALYZE = "run `python -m bot analyze` on"
_FOR_TERMINAL: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"Link your Spotify account with `/spotify link` \([^)]*\), or export"), "Export"),
    (re.compile(r" \(after `/spotify link`\)"), " (the Discord bot's `/spotify link`)"),
    (re.compile(r"attach (that file|the CSV file)(?: here)?"), _ANALYZE + r" \1"),
    (re.compile(r"attach (the \.csv of one playlist)"), _ANALYZE + r" \1"),
    (re.compile(r"\(or attach (the \.csv)"), r"(or use \1"),
    (re.compile(r"attach an Exportify CSV"), "export it with Exportify and analyze the CSV"),
)


def for_terminal(message: str, err: PipelineError | None = None) -> str:
    """``message`` as the CLI prints it: what to run instead of what to attach in Discord; a
    playlist over the size limit says how to raise it (the CLI's user is its operator)."""
    for pattern, replacement in _FOR_TERMINAL:
        message = pattern.sub(replacement, message)
    if isinstance(err, TooLarge):
        message += " Or raise the limit for one run: MAX_PLAYLIST_TRACKS=<tracks> python -m bot …"
    return message


def main(argv: list[str] | None = None, *, settings: Settings | None = None) -> int:
    """Entry point of the subcommands; returns the process exit code (130 after Ctrl-C, which
    printed a traceback through asyncio.run; the outputs are written whole or not at all)."""
    try:
        return _main(argv, settings)
    except KeyboardInterrupt:
        print("\ninterrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv: list[str] | None, settings: Settings | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_Once())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])  # no-op if already set up
    logging.getLogger("spotipy").setLevel(logging.WARNING)  # it logs bearer tokens at DEBUG
    settings = settings or get_settings()
    try:
        request = request_for(args)
        analysis, rendered = asyncio.run(_run(settings, request))
    except PipelineError as err:
        print(f"error: {for_terminal(err.user_message, err)}", file=sys.stderr)
        return EXIT_USER_ERROR
    out = args.out or Path("out") / slugify(analysis.source.name)
    try:
        paths = write_outputs(rendered, out)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if _is_file(out):
            reason = "it is a file; --out names a folder"
        where = _shorten(str(out))
        print(f"error: Cannot write the results to {where}: {reason}.", file=sys.stderr)
        return EXIT_USER_ERROR
    print_table(analysis)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
