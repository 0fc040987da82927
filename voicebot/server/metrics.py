"""Prometheus metrics of the server, fed from the calls' event streams.

Each app gets its own registry (tests run several apps in one process). The
figures come from the same events the demo page and ``voicebot run`` see, so
the dashboards and the page never disagree.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from voicebot.events import EventRecord

# Seconds; the stages of one turn range from ~1 ms (dialog) to ~1 s (endpointing).
STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
LAG_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
TURN_STAGES = ("endpoint", "asr", "dialog", "tts", "playback", "voice_to_voice")


class Metrics:
    """The server's metrics; ``observe`` takes every event of every call."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        ProcessCollector(registry=r)  # process_resident_memory_bytes, cpu, open fds
        self.calls_active = Gauge("voicebot_calls_active", "Calls in progress", registry=r)
        self.calls_max = Gauge(
            "voicebot_calls_max", "Admission limit (concurrent calls)", registry=r
        )
        self.calls = Counter(
            "voicebot_calls",
            "Calls ended, by reason and transport",
            ["reason", "transport"],
            registry=r,
        )
        self.rejected = Counter(
            "voicebot_offers_rejected",
            "Offers (WebRTC) and INVITEs (SIP) refused, by reason (busy, unauthorized, "
            "bad_request, no_rtp_port) and transport",
            ["reason", "transport"],
            registry=r,
        )
        self.provider_transfers = Counter(
            "voicebot_provider_transfers",
            "Transfers through a provider's REST API, by provider and result (dialed, "
            "failed, no_account, no_number, no_call_id)",
            ["provider", "result"],
            registry=r,
        )
        self.outbound_calls = Counter(
            "voicebot_outbound_calls",
            "Dial-outs ended, by result (answered, busy, no-answer, failed)",
            ["result"],
            registry=r,
        )
        self.sip_registered = Gauge(
            "voicebot_sip_registered",
            "1 while the registrar holds our binding (--sip-register), else 0",
            registry=r,
        )
        self.dials = Counter(
            "voicebot_sip_dials",
            "Calls placed (POST /calls), by status (answered, busy, no_answer, failed, cancelled)",
            ["status"],
            registry=r,
        )
        self.transfers = Counter(
            "voicebot_sip_transfers",
            "Blind transfers (SIP REFER), by result "
            "(transferred, refused, failed, timeout, hangup)",
            ["result", "transport"],
            registry=r,
        )
        self.turn_stage = Histogram(
            "voicebot_turn_stage_seconds",
            "Where a turn's time went: caller's last voice to the bot's first audio, per stage",
            ["stage", "transport"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.frame_drops = Counter(
            "voicebot_frame_drops",
            "Frames dropped, by graph edge (and the output track)",
            ["edge"],
            registry=r,
        )
        self.loop_lag = Histogram(
            "voicebot_loop_lag_seconds",
            "Event-loop lag, sampled every 50 ms",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.call_loop_lag = Histogram(
            "voicebot_call_worst_loop_lag_seconds",
            "Worst event-loop lag seen by each call",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.errors = Counter("voicebot_errors", "Stage errors, by stage", ["stage"], registry=r)
        self.barge_ins = Counter(
            "voicebot_barge_ins", "Replies interrupted by the caller", registry=r
        )
        self.turns = Counter(
            "voicebot_turns", "Caller turns answered, by transport", ["transport"], registry=r
        )
        self.speech_requests = Counter(
            "voicebot_speech_api_requests",
            "Speech API (/v1) requests, by route and status",
            ["route", "status"],
            registry=r,
        )
        self.speech_seconds = Histogram(
            "voicebot_speech_api_seconds",
            "Speech API time until the response starts, by route",
            ["route"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self._lag_task: asyncio.Task[None] | None = None

    def observer(self, transport: str) -> Callable[[EventRecord], None]:
        """The listener for one call's events, its figures labelled with its transport."""
        return functools.partial(self.observe, transport=transport)

    def observe(self, event: EventRecord, transport: str = "webrtc") -> None:
        kind = event["type"]
        if kind == "turn":
            self.turns.labels(transport).inc()
            for stage in TURN_STAGES:
                ms = event.get(f"{stage}_ms")
                if ms is not None:
                    self.turn_stage.labels(stage, transport).observe(ms / 1000)
        elif kind == "interrupted":
            self.barge_ins.inc()
        elif kind == "error":
            self.errors.labels(event.get("stage", "unknown")).inc()
        elif kind == "call_ended":
            for edge, n in event.get("drops", {}).items():
                self.frame_drops.labels(edge).inc(n)
            self.call_loop_lag.observe(event.get("worst_loop_lag_ms", 0.0) / 1000)

    def output_drops(self, n: int) -> None:
        if n:
            self.frame_drops.labels("output_track").inc(n)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    # --- process-wide loop lag ------------------------------------------------------
    def start(self) -> None:
        self._lag_task = asyncio.get_running_loop().create_task(
            self._sample_lag(), name="metrics-loop-lag"
        )

    async def stop(self) -> None:
        task, self._lag_task = self._lag_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _sample_lag(self, interval: float = 0.05) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(interval)
            self.loop_lag.observe(max(0.0, time.perf_counter() - start - interval))
