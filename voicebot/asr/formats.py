"""Transcription response formats of the OpenAI API: json, text, srt, vtt, verbose_json.

Segments are faster-whisper's (``id, seek, start, end, text, tokens, temperature,
avg_logprob, compression_ratio, no_speech_prob``; ``words`` when asked for).
"""

from __future__ import annotations

from typing import Any

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")


def _stamp(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def full_text(segments: list[Any]) -> str:
    return " ".join(seg.text.strip() for seg in segments if seg.text.strip())


def srt(segments: list[Any]) -> str:
    blocks = [
        f"{i}\n{_stamp(seg.start, ',')} --> {_stamp(seg.end, ',')}\n{seg.text.strip()}\n"
        for i, seg in enumerate(segments, 1)
    ]
    return "\n".join(blocks)


def vtt(segments: list[Any]) -> str:
    blocks = [
        f"{_stamp(seg.start, '.')} --> {_stamp(seg.end, '.')}\n{seg.text.strip()}\n"
        for seg in segments
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


def verbose_json(
    segments: list[Any], *, language: str, duration: float, words: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "task": "transcribe",
        "language": language,
        "duration": round(duration, 3),
        "text": full_text(segments),
        "segments": [
            {
                "id": seg.id - 1 if seg.id else i,  # faster-whisper counts from 1, OpenAI from 0
                "seek": seg.seek,
                "start": round(seg.start, 3),
                "end": round(seg.end, 3),
                "text": seg.text,
                "tokens": list(seg.tokens),
                "temperature": seg.temperature,
                "avg_logprob": seg.avg_logprob,
                "compression_ratio": seg.compression_ratio,
                "no_speech_prob": seg.no_speech_prob,
            }
            for i, seg in enumerate(segments)
        ],
    }
    if words:
        out["words"] = [
            {"word": w.word.strip(), "start": round(w.start, 3), "end": round(w.end, 3)}
            for seg in segments
            for w in (seg.words or [])
        ]
    return out
