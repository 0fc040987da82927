"""LLM fallback against a real local HTTP server emulating OpenAI chat completions."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.support.paths import RESTAURANT_INTENTS, RESTAURANT_PIPELINE, ROOT
from voicebot.nlu.llm import LlmMatcher
from voicebot.nlu.matcher import IntentMatcher
from voicebot.nlu.template_matcher import TemplateMatcher, load_intents

KEY = "sk-test-not-a-real-key-1234"

# What the fake model answers, by the user's utterance.
ANSWERS: dict[str, Any] = {
    "I'd fancy a spot at yours for four on friday around half seven": {
        "intent": "book_table",
        "slots": {"party_size": 4, "day": "Friday", "time": "half past seven", "bogus": 1},
    },
    "we will be a dozen folks tomorrow": {
        "intent": "book_table",
        "slots": {"party_size": "twelve", "day": "tomorrow"},
    },
    "gimme fifty chairs": {"intent": "book_table", "slots": {"party_size": 50}},
    # nothing the templates or the statistical tier know: only the model understands it
    "glorp florp zibber": {
        "intent": "book_table",
        "slots": {"party_size": "twelve", "day": "tomorrow"},
    },
    "not allowed please": {"intent": "cancel_booking", "slots": {}},
    "nothing fits": {"intent": "none", "slots": {}},
}


class FakeChat(BaseHTTPRequestHandler):
    requests: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeChat.requests.append(
            {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
        )
        text = body["messages"][-1]["content"]
        if text == "slow":
            time.sleep(1.0)
        if text == "server error":
            self.send_response(500)
            self.end_headers()
            return
        content = (
            "this is { not json"
            if text == "garbage"
            else json.dumps(ANSWERS.get(text, {"intent": "none"}))
        )
        payload = json.dumps(
            {"choices": [{"message": {"role": "assistant", "content": content}}]}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeChat)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
async def matcher(server: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LlmMatcher]:
    monkeypatch.setenv("TEST_LLM_KEY", KEY)
    intents, _ = load_intents([RESTAURANT_INTENTS])
    base = TemplateMatcher(intents, "en", today=dt.date(2025, 6, 4))
    FakeChat.requests.clear()
    llm = LlmMatcher(
        base,
        base_url=server,
        model="tiny-test",
        api_key_env="TEST_LLM_KEY",
        timeout_s=0.3,
        today=dt.date(2025, 6, 4),
    )
    yield llm
    await llm.aclose()


ALLOWED = {"book_table", "inform", "human_agent"}


async def test_answer_is_validated_and_typed(matcher: LlmMatcher) -> None:
    text = "I'd fancy a spot at yours for four on friday around half seven"
    found = await matcher.match_async(text, ALLOWED)
    assert found is not None
    assert (found.intent, found.slots, found.matcher) == (
        "book_table",
        {"party_size": 4, "day": "friday", "time": "19:30"},
        "llm",
    )
    assert found.confidence < 1
    [request] = FakeChat.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == f"Bearer {KEY}"
    body = request["body"]
    assert body["model"] == "tiny-test"
    assert body["response_format"] == {"type": "json_object"}
    system = body["messages"][0]["content"]
    assert "- book_table:" in system and "- inform:" in system and "- human_agent:" in system
    for other in ("greet", "cancel_booking", "opening_hours", "affirm"):
        assert f"- {other}" not in system  # only the allowed intents are offered
    assert "party_size (number of people 1..20)" in system


async def test_relative_and_word_values(matcher: LlmMatcher) -> None:
    found = await matcher.match_async("we will be a dozen folks tomorrow", ALLOWED)
    assert found is not None and found.slots == {"party_size": 12, "day": "thursday"}


async def test_invalid_slot_value_is_dropped(matcher: LlmMatcher) -> None:
    found = await matcher.match_async("gimme fifty chairs", ALLOWED)
    assert found is not None and (found.intent, found.slots) == ("book_table", {})


async def test_template_match_skips_the_llm(matcher: LlmMatcher) -> None:
    found = await matcher.match_async("I want to speak to a human", ALLOWED)
    assert found is not None and found.matcher == "exact"
    assert FakeChat.requests == []


async def test_partials_never_call_the_llm(matcher: LlmMatcher) -> None:
    assert await matcher.match_async("gimme fifty chairs", ALLOWED, interim=True) is None
    assert FakeChat.requests == []


async def test_sync_match_does_not_call_the_llm(matcher: LlmMatcher) -> None:
    assert matcher.match("gimme fifty chairs", ALLOWED) is None
    assert FakeChat.requests == []


@pytest.mark.parametrize(
    "text", ["slow", "garbage", "not allowed please", "nothing fits", "server error"]
)
async def test_failures_become_no_match(
    matcher: LlmMatcher, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="voicebot.nlu.llm")
    started = time.perf_counter()
    assert await matcher.match_async(text, ALLOWED) is None
    assert time.perf_counter() - started < 0.8  # the hard timeout, not the server's 1 s
    assert KEY not in caplog.text
    if text != "nothing fits":
        assert caplog.records, "failures are logged"


async def test_unreachable_endpoint(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TEST_LLM_KEY", KEY)
    intents, _ = load_intents([RESTAURANT_INTENTS])
    llm = LlmMatcher(
        TemplateMatcher(intents, "en"),
        base_url="http://127.0.0.1:9",
        model="m",
        api_key_env="TEST_LLM_KEY",
        timeout_s=0.5,
    )
    assert await llm.match_async("gimme fifty chairs") is None
    assert "LLM fallback failed" in caplog.text and KEY not in caplog.text
    assert KEY not in repr(llm)
    await llm.aclose()


def test_missing_key_is_reported_without_failing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    intents, _ = load_intents([RESTAURANT_INTENTS])
    LlmMatcher(
        TemplateMatcher(intents, "en"),
        base_url="http://x",
        model="m",
        api_key_env="NO_SUCH_KEY_VAR",
    )
    assert "NO_SUCH_KEY_VAR is not set" in caplog.text


async def test_pipeline_llm_settings_wire_the_fallback(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``dialog.llm`` in a pipeline YAML puts the fallback behind the flow's matcher."""
    from voicebot.call import dialog_stage
    from voicebot.config import load_pipeline
    from voicebot.diagnostics import ConfigError

    monkeypatch.setenv("TEST_LLM_KEY", KEY)
    text = RESTAURANT_PIPELINE.read_text().replace("../", f"{ROOT}/")
    text += f"  outcomes: {tmp_path}/o.db\n"
    llm = (
        f"  llm:\n    enabled: true\n    base_url: {server}\n    model: tiny-test\n"
        "    api_key_env: TEST_LLM_KEY\n    timeout_ms: 300\n"
    )
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(text + llm)
    matcher = dialog_stage(load_pipeline(pipeline)).matcher
    assert isinstance(matcher, LlmMatcher) and matcher.timeout_s == 0.3
    FakeChat.requests.clear()
    match = await matcher.match_async("glorp florp zibber", ALLOWED)
    assert match is not None and match.matcher == "llm" and match.slots["party_size"] == 12
    assert FakeChat.requests[-1]["auth"] == f"Bearer {KEY}"

    pipeline.write_text(text + llm.replace("enabled: true", "enabled: false"))
    assert isinstance(dialog_stage(load_pipeline(pipeline)).matcher, IntentMatcher)

    pipeline.write_text(text + llm.replace("    model: tiny-test\n", ""))
    with pytest.raises(ConfigError, match=r"E103 missing required key 'model' \(llm enabled\)"):
        load_pipeline(pipeline)
