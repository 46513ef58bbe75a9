"""JSON codecs for the plain data types: compact dumps, chunked dumps, analysis parts.

Ground floor next to :mod:`bot.models` (and depending on nothing else): storage, the jobs and
the worker processes all encode and decode through these functions, so stored rows,
checkpoints and process results share one format.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from bot.models import Analysis

# Items per json call when encoding big containers piece by piece (see dumps_chunked).
CHUNK = 500


def dumps(value: Any) -> str:
    """Compact JSON (no spaces, UTF-8 kept as is): the form every stored JSON column uses."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class RawJson(str):
    """Text that is already JSON: embedded as is by :func:`dumps_chunked`."""


def dumps_chunked(value: Any) -> str:
    """The same text as :func:`dumps`, but big lists/dicts are encoded ``CHUNK`` items at a time.

    Meant to run in a thread: one ``json.dumps`` of megabytes is a single C call holding the
    GIL (the event loop stalls for all of it); many short calls let the loop run in between.
    The pieces are joined once, at the end (no intermediate copies of big texts).
    """
    out: list[str] = []
    _encode_into(value, out)
    return out[0] if len(out) == 1 else "".join(out)


def _encode_into(value: Any, out: list[str]) -> None:
    """Append the JSON text of ``value`` to ``out``, in pieces (see :func:`dumps_chunked`)."""
    if isinstance(value, RawJson):
        out.append(value)
    elif not _big(value):
        out.append(dumps(value))
    elif isinstance(value, list):
        out.append("[")
        for i in range(0, len(value), CHUNK):
            if i:
                out.append(",")
            chunk = value[i : i + CHUNK]
            if _big(chunk):
                for j, v in enumerate(chunk):
                    if j:
                        out.append(",")
                    _encode_into(v, out)
            else:
                out.append(dumps(chunk)[1:-1])
        out.append("]")
    else:
        items = list(value.items())
        out.append("{")
        if len(items) > CHUNK and not any(isinstance(v, RawJson) for _, v in items):
            for i in range(0, len(items), CHUNK):
                out.append(("," if i else "") + dumps(dict(items[i : i + CHUNK]))[1:-1])
        else:
            for i, (k, v) in enumerate(items):
                out.append(("," if i else "") + dumps(k) + ":")
                _encode_into(v, out)
        out.append("}")


def _big(value: Any) -> bool:
    """Holds raw JSON or a container of more than ``CHUNK`` items (at any depth)."""
    if isinstance(value, RawJson):
        return True
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            return False  # json.dumps converts such keys: leave it to one call
        return len(value) > CHUNK or any(_big(v) for v in value.values())
    if isinstance(value, list):
        return len(value) > CHUNK or any(_big(v) for v in value)
    return False


def dumps_part(value: Any) -> str:
    """Compact JSON with every non-ASCII character escaped: the form of an analysis' parts.

    An analysis' text is megabytes; Python keeps a ``str`` holding a single emoji at 4 bytes
    per character (one with only ASCII at 1), and its copies (the parts, the joined text, the
    checkpoint) were what made the bot process' memory peak (a 10,000-track analysis: 7 M
    characters, ~28 MB per copy instead of ~7 MB). ``json.loads`` reads it back the same.
    """
    return json.dumps(value, separators=(",", ":"))


def encode_parts(analysis: Analysis) -> list[str]:
    """JSON text of each item of ``analysis.to_parts()`` (head first; :func:`dumps_part`)."""
    return [dumps_part(part) for part in analysis.to_parts()]


def parts_text(parts: list[str]) -> str:
    """One JSON array, one part per line: ``[\\n<head>,\\n<part>,\\n...\\n]``.

    Valid JSON (``Analysis.from_dict(json.loads(text))`` reads it), and :func:`decode_text`
    splits it into lines to decode part by part. JSON text never holds a raw newline.
    """
    return "[\n" + ",\n".join(parts) + "\n]"


def decode_parts(parts: list[str], *, on_part: Callable[[], None] | None = None) -> Analysis:
    """Analysis from :func:`encode_parts` output; every json call is one part (short).

    ``on_part()`` is called before decoding each part after the head (e.g. ``gc.freeze``
    so full collections meanwhile skip the parts already built).
    """

    def decoded() -> Iterator[Any]:
        for i, text in enumerate(parts):
            if i > 1 and on_part is not None:
                on_part()
            yield json.loads(text)

    return Analysis.from_parts(decoded())


def decode_text(text: str, *, on_part: Callable[[], None] | None = None) -> Analysis:
    """Analysis from :func:`parts_text` output or from a plain ``to_dict()`` JSON object."""
    if text.startswith("[\n"):
        lines = text.split("\n")[1:-1]
        parts = [line[:-1] if line.endswith(",") else line for line in lines]
        return decode_parts(parts, on_part=on_part)
    return Analysis.from_dict(json.loads(text))


# Characters per zlib call in compress_text: each call releases the GIL on a short piece.
_SQUEEZE_CHUNK = 1 << 20


def compress_text(text: str) -> str:
    """``text`` (e.g. :func:`parts_text`, ASCII) zlib-compressed and base64-encoded: a
    JSON string a third as long, for checkpoints nobody reads but a resuming job.

    A 10,000-track analysis is 8.25 MB of text, 3.4 MB so (zlib level 1: ~70 ms, in pieces,
    without the GIL). Committing the "rendering" checkpoint copied it three times at the bot
    process' peak (the checkpoint's text, SQLite's bound copy, SQLite's record): 25 MB on top
    of what the job held, 10 MB now. :func:`decompress_text` reads it back.
    """
    squeezer = zlib.compressobj(1)
    pieces = [
        squeezer.compress(text[i : i + _SQUEEZE_CHUNK].encode())
        for i in range(0, len(text), _SQUEEZE_CHUNK)
    ]
    pieces.append(squeezer.flush())
    data = b"".join(pieces)
    del pieces
    return base64.b64encode(data).decode("ascii")


def decompress_text(squeezed: str) -> str:
    """The text :func:`compress_text` was given."""
    return zlib.decompress(base64.b64decode(squeezed)).decode()
