"""SIP test helpers: the server with SIP on a free port, baresip's configuration and
recordings; polling a call's events is ``server.py``'s, importable from here too."""

from __future__ import annotations

import contextlib
import os
import shutil
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.server import ended, of_type, served, until
from voicebot.audio.resample import StreamResampler
from voicebot.config import load_pipeline
from voicebot.events import EventRecord
from voicebot.server.calls import ServerSettings
from voicebot.server.child import free_port
from voicebot.transports.sip.settings import SipSettings

__all__ = [
    "BARESIP",
    "RTP_TIMEOUT",
    "ended",
    "heard",
    "needs_baresip",
    "of_type",
    "phone",
    "read_wav",
    "sip_server",
    "until",
    "write_wav",
]

BARESIP = shutil.which("baresip")
# skipped where baresip is missing, but not under CI (``CI`` set, as ``.ci/run`` does):
# there the phone tests must run, and fail if ``make test`` could not install baresip
needs_baresip = pytest.mark.skipif(
    BARESIP is None and not os.environ.get("CI"),
    reason="baresip is not installed (apt-get install baresip-core)",
)


def write_wav(path: Path, pcm: np.ndarray, rate: int = 8000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype(np.int16).tobytes())
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), np.int16), w.getframerate()


def phone(tmp: Path, microphone: Path, codec: str = "PCMU", keypad: bool = False) -> Path:
    """A baresip configuration directory: one codec offered, the WAV as microphone,
    recording on; ``keypad``: keys written to its stdin are pressed."""
    (tmp / "rec").mkdir(parents=True)
    (tmp / "config").write_text(
        f"""poll_method epoll
sip_listen 127.0.0.1:{free_port()}
call_local_timeout 120
audio_player aubridge,nowhere
audio_alert aubridge,nowhere
audio_source aufile,{microphone}
module_path /usr/lib/baresip/modules
module g711.so
module g722.so
module aufile.so
module aubridge.so
module sndfile.so
module_tmp account.so
{"module stdio.so" if keypad else ""}
module_app menu.so
snd_path {tmp / "rec"}
"""
    )
    (tmp / "accounts").write_text(f"<sip:caller@127.0.0.1>;regint=0;audio_codecs={codec}\n")
    return tmp


def heard(confdir: Path) -> np.ndarray:
    """What baresip's speaker got (its decoded audio), at 16 kHz."""
    (path,) = (confdir / "rec").glob("dump-*-dec.wav")
    pcm, rate = read_wav(path)
    resampler = StreamResampler(rate, 1, 16000, 1)
    return np.concatenate([resampler.process(pcm), resampler.flush()])


@contextlib.asynccontextmanager
async def sip_server(
    pipeline: Path,
    outcomes: Path | None = None,
    max_calls: int = 4,
    flow: Path | None = None,
    token: str | None = None,
    transfer_to: dict[str, str] | None = None,
    **sip: Any,
) -> AsyncIterator[tuple[int, list[EventRecord], Any]]:
    """The server's app with SIP on a free port, started as ``voicebot serve`` starts it;
    ``flow`` replaces the pipeline's flow file, ``token`` is the bearer token of ``/offer``
    and ``/calls``, ``transfer_to`` maps flow targets to URIs or numbers, ``sip`` sets
    ``SipSettings`` fields."""
    config = load_pipeline(pipeline)
    if outcomes is not None:
        config.dialog.outcomes = str(outcomes)
    if flow is not None:
        config.dialog.flow = [str(flow)]
    settings = SipSettings(port=0, **{"rtp_timeout": RTP_TIMEOUT, **sip})
    server = ServerSettings(
        sip=settings, max_calls=max_calls, token=token, transfer_to=transfer_to or {}
    )
    async with served(config, server, http=False) as (_, events, app):
        yield app.state.sip.port, events, app


RTP_TIMEOUT = 3.0
