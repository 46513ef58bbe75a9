"""The codecs of the process boundary and of stored JSON (bot/codecs.py, bot/jobs/cpu.py)."""

from __future__ import annotations

import json

from bot.codecs import (
    RawJson,
    compress_text,
    decode_text,
    decompress_text,
    dumps,
    dumps_chunked,
    encode_parts,
    parts_text,
)
from bot.models import Analysis
from tests.storage_helpers import make_analysis, make_fetch


def test_compressed_analysis_text_reads_back_the_same():
    analysis = make_analysis(make_fetch(1200))
    analysis.source.name = "Mix 🎧 été"
    stored = parts_text(encode_parts(analysis))
    squeezed = compress_text(stored)
    assert len(squeezed) < len(stored) / 2 and squeezed.isascii()
    checkpoint = json.loads(dumps_chunked({"fetch": None, "analysis_z": squeezed}))
    assert decompress_text(checkpoint["analysis_z"]) == stored
    assert decode_text(decompress_text(squeezed)).to_dict() == analysis.to_dict()
    assert decompress_text(compress_text("é" * 3_000_000)) == "é" * 3_000_000  # pieces


def test_analysis_parts_are_ascii_and_read_back_the_same():
    """Escaped non-ASCII keeps each copy of a big analysis text at 1 byte per character."""
    analysis = make_analysis(make_fetch(30))
    analysis.source.name = "Mix 🎧 été"
    analysis.tracks[0].name = "Ünïcødé ♪"
    text = parts_text(encode_parts(analysis))
    assert text.isascii()
    assert Analysis.from_dict(json.loads(text)).to_dict() == analysis.to_dict()


def test_chunked_json_matches_one_call():
    values = [
        [{"id": str(i), "x": [RawJson("[1]")] if i == 700 else []} for i in range(1100)],
        {"a": [RawJson("2")], "b": list(range(1500))},
        [[], {}, "é"],
    ]
    plain = [
        [{"id": str(i), "x": [[1]] if i == 700 else []} for i in range(1100)],
        {"a": [2], "b": list(range(1500))},
        [[], {}, "é"],
    ]
    for value, same in zip(values, plain, strict=True):
        assert json.loads(dumps_chunked(value)) == same
        assert dumps_chunked(value) == dumps(same)
