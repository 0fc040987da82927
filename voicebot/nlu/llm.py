"""Optional LLM fallback: ask an OpenAI-compatible chat-completions endpoint.

Only when the template matcher finds nothing, and never on partial
transcripts. The model sees only the intents the flow state allows (with
their slots), must answer JSON, and everything it says is validated: an
intent outside the allowed set is dropped, slot values go through the same
slot-type parsers as template captures (an invalid value is left out). A hard
``asyncio.timeout`` keeps the call inside the latency budget; any failure -
timeout, HTTP error, garbage - is logged and becomes "no match", never an
exception in the call. The API key is read from the environment variable the
config names and is never logged or shown in ``repr``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
from collections.abc import Collection
from typing import Any

import httpx

from voicebot.nlu.intent_file import IntentSet
from voicebot.nlu.match import Match, Matcher
from voicebot.nlu.normalize import normalize

log = logging.getLogger(__name__)

_PROMPT = """You classify one utterance of a caller on the phone. It comes from speech \
recognition in language {language!r}, so words may be misheard. Pick exactly one intent \
from the list, or "none" if no intent fits. Fill only slots the caller actually gave; \
write values as described.

Intents:
{intents}

Answer with one JSON object and nothing else: \
{{"intent": "<intent name or none>", "slots": {{"<slot>": <value>}}}}"""


class LlmMatcher(Matcher):
    """Wraps ``base``; on no match, asks the LLM (``match_async`` only)."""

    def __init__(
        self,
        base: Matcher,
        *,
        base_url: str,
        model: str,
        api_key_env: str | None = None,
        timeout_s: float = 1.0,
        intent_set: IntentSet | None = None,
        confidence: float = 0.6,
        today: dt.date | None = None,
    ) -> None:
        intents = intent_set if intent_set is not None else getattr(base, "intent_set", None)
        if intents is None:
            raise ValueError("LlmMatcher needs the IntentSet (pass intent_set=...)")
        self.base = base
        self.language = base.language
        self.intent_set = intents
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.timeout_s = timeout_s
        self.confidence = confidence
        self._today = today
        self._key = os.environ.get(api_key_env, "") if api_key_env else ""
        if api_key_env and not self._key:
            log.warning(
                "LLM fallback: environment variable %s is not set; calling %s without an API key",
                api_key_env,
                self.url,
            )
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._prompts: dict[frozenset[str], str] = {}

    def __repr__(self) -> str:
        return f"LlmMatcher(url={self.url!r}, model={self.model!r}, timeout_s={self.timeout_s})"

    def match(
        self,
        text: str,
        allowed: Collection[str] | None = None,
        *,
        interim: bool = False,
        expect: str | None = None,
    ) -> Match | None:
        """The base matcher only: a blocking network call has no place here."""
        return self.base.match(text, allowed, interim=interim, expect=expect)

    async def match_async(
        self,
        text: str,
        allowed: Collection[str] | None = None,
        *,
        interim: bool = False,
        expect: str | None = None,
    ) -> Match | None:
        found = await self.base.match_async(text, allowed, interim=interim, expect=expect)
        if found is not None or interim or not text.strip():
            return found
        names = frozenset(self.intent_set.intents if allowed is None else allowed) & frozenset(
            self.intent_set.intents
        )
        if not names:
            return None
        try:
            async with asyncio.timeout(self.timeout_s):
                answer = await self._ask(text, names)
        except TimeoutError:
            log.warning("LLM fallback: no answer within %.0f ms", self.timeout_s * 1000)
            return None
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
            log.warning("LLM fallback failed: %s: %s", type(exc).__name__, exc)
            return None
        return self._validate(answer, names, text)

    async def aclose(self) -> None:
        """Close the pooled HTTP client."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            # Pooled connections belong to one event loop; a new loop gets a new pool.
            headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
            self._client = httpx.AsyncClient(headers=headers, timeout=self.timeout_s + 1)
            self._client_loop = loop
        return self._client

    async def _ask(self, text: str, names: frozenset[str]) -> Any:
        body = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": self.prompt(names)},
                {"role": "user", "content": text},
            ],
            "response_format": {"type": "json_object"},
            "temperature": 0,
            "max_tokens": 200,
        }
        response = await self._http().post(self.url, json=body)
        response.raise_for_status()
        content = response.json()["choices"][0]["message"]["content"]
        return json.loads(content)

    def prompt(self, names: frozenset[str]) -> str:
        """The system prompt listing only ``names`` and their slots."""
        cached = self._prompts.get(names)
        if cached is None:
            lines = []
            for name in sorted(names):
                intent = self.intent_set.intents[name]
                line = f"- {name}" + (f": {intent.description}" if intent.description else "")
                if intent.slots:
                    slots = "; ".join(f"{s} ({t.describe()})" for s, t in intent.slots.items())
                    line += f" Slots: {slots}."
                lines.append(line)
            cached = self._prompts[names] = _PROMPT.format(
                language=self.language, intents="\n".join(lines)
            )
        return cached

    def _validate(self, answer: Any, names: frozenset[str], text: str) -> Match | None:
        if not isinstance(answer, dict) or not isinstance(answer.get("intent"), str):
            log.warning('LLM fallback: answer is not {"intent": ...}: %.200r', answer)
            return None
        name = answer["intent"]
        if name not in names:
            if name.lower() != "none":
                log.warning("LLM fallback: intent %r is not allowed here", name)
            return None
        raw = answer.get("slots") or {}
        slots: dict[str, Any] = {}
        types = self.intent_set.intents[name].slots
        today = self._today or dt.date.today()
        for slot, value in raw.items() if isinstance(raw, dict) else ():
            slot_type = types.get(slot)
            parsed = (
                None if slot_type is None else slot_type.parse(value, self.language, today=today)
            )
            if parsed is None:
                log.info("LLM fallback: dropped slot %s=%.50r", slot, value)
            else:
                slots[slot] = parsed
        return Match(name, slots, self.confidence, "llm", normalize(text, self.language))
