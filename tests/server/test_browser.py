"""The demo page in a real browser: headless Chromium calls the bot with a fake microphone.

Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright) plays a WAV
file as its microphone: a second of silence, the caller's sentence, then long
silence (Chromium loops the file). The test clicks Call, waits for the
transcript to show the caller's words and the bot's answer, types a message,
hangs up, and saves a screenshot to ``artifacts/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jiwer
import numpy as np
import pytest
from playwright.async_api import Page, async_playwright

from tests.support.paths import ARTIFACTS
from tests.support.speech import say
from voicebot.server.child import ChildServer
from voicebot.transports.file import write_wav

CHROMIUM = Path("/usr/bin/chromium")
SENTENCE = "Hello, I would like to book a table for two."
BOOKING = "Hi, I would like to book a table for four people on Friday."

if not CHROMIUM.exists():
    if os.environ.get("CI") == "true":
        pytest.fail("/usr/bin/chromium is missing (apt-get install -y chromium)", pytrace=False)
    pytest.skip(
        "/usr/bin/chromium is missing (apt-get install -y chromium)", allow_module_level=True
    )


def wer(ref: str, hyp: str) -> float:
    clean = lambda s: " ".join(re.sub(r"[^a-z0-9' ]+", " ", s.lower()).split())  # noqa: E731
    return jiwer.wer(clean(ref), clean(hyp))


def fake_microphone(path: Path, text: str, lead: float) -> Path:
    """``lead`` s of silence, ``text``, then a minute of silence (Chromium loops the file)."""
    rate = 48000
    audio = np.concatenate(
        [np.zeros(round(lead * rate), np.int16), say(text, rate), np.zeros(60 * rate, np.int16)]
    )
    write_wav(path, audio, rate)
    return path


@contextlib.asynccontextmanager
async def chromium_page(microphone: Path) -> AsyncIterator[Page]:
    """A page in headless Chromium whose microphone plays ``microphone``."""
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={microphone}",
                "--autoplay-policy=no-user-gesture-required",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            yield page
            assert not errors, errors
        finally:
            await browser.close()


async def released(url: str) -> None:
    deadline = time.monotonic() + 10
    async with httpx.AsyncClient() as http:
        while (await http.get(f"{url}/healthz")).json()["calls_active"]:
            assert time.monotonic() < deadline, "the browser's call was not released"
            await asyncio.sleep(0.1)


async def transcript_has(page: Page, text: str, within_ms: float = 30000) -> None:
    await page.wait_for_function(
        "text => document.querySelector('#transcript').innerText.includes(text)",
        arg=text,
        timeout=within_ms,
    )


async def bot_finished(page: Page, replies: int, within_ms: float = 30000) -> None:
    """Wait until the bot has finished speaking its first ``replies`` replies."""
    await page.wait_for_function(
        "n => document.querySelectorAll('.msg.bot[data-done]').length >= n",
        arg=replies,
        timeout=within_ms,
    )


async def test_demo_page_call(echo_server: ChildServer, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    async with chromium_page(fake_microphone(tmp_path / "caller.wav", SENTENCE, 1.0)) as page:
        await page.goto(echo_server.url + "/")
        await page.wait_for_function(
            "document.querySelector('#pipeline').textContent.includes('echo')"
        )
        assert await page.is_disabled("#hangup")
        await page.click("#call")
        await page.wait_for_selector("#status.live", timeout=15000)
        await transcript_has(page, "You said")
        caller = await page.locator(".msg.caller:not(.partial) .bubble").all_inner_texts()
        bot = await page.locator(".msg.bot .bubble").all_inner_texts()
        assert caller and wer(SENTENCE, caller[0]) <= 0.25, caller
        assert bot[0] == f"You said: {caller[0]}"
        transcript = await page.inner_text("#transcript")
        assert caller[0] in transcript and bot[0] in transcript
        await page.wait_for_selector("#latency .lat-row", timeout=10000)
        await page.wait_for_timeout(1500)  # the reply plays; the meter and bars settle
        await page.screenshot(path=str(ARTIFACTS / "browser-call.png"), full_page=True)

        # Typing instead of speaking is a caller turn too.
        await page.fill("#textinput", "What time do you open?")
        await page.press("#textinput", "Enter")
        await transcript_has(page, "You said: What time do you open?", 15000)
        await page.click("#hangup")
        await page.wait_for_selector("#status.ended", timeout=10000)
        await page.wait_for_timeout(500)  # let the last messages fade in
        assert "You hung up." in await page.inner_text("#transcript")
        assert await page.is_enabled("#call")
        await page.screenshot(path=str(ARTIFACTS / "browser-ended.png"), full_page=True)
    await released(echo_server.url)


async def test_demo_page_restaurant_booking(restaurant_server: ChildServer, tmp_path: Path) -> None:
    """The default bot: greeting, a spoken request, typed answers, the booking on screen."""
    ARTIFACTS.mkdir(exist_ok=True)
    # The caller speaks once the ~3.5 s greeting is over.
    async with chromium_page(fake_microphone(tmp_path / "caller.wav", BOOKING, 5.0)) as page:
        await page.goto(restaurant_server.url + "/")
        await page.click("#call")
        await transcript_has(page, "How can I help you?", 15000)
        await transcript_has(page, "At what time?")
        await bot_finished(page, 2)
        caller = await page.locator(".msg.caller:not(.partial) .bubble").all_inner_texts()
        assert wer(BOOKING, caller[0]) <= 0.25, caller
        assert "book_table" in await page.inner_text("#intent")
        slots = await page.inner_text("#slots")
        assert "party_size" in slots and "4" in slots and "friday" in slots
        assert "ask_time" in await page.inner_text("#state")

        await page.fill("#textinput", "At seven in the evening.")
        await page.press("#textinput", "Enter")
        await transcript_has(page, "Shall I book it?")
        assert "confirm_booking" in await page.inner_text("#state")
        await bot_finished(page, 3)
        await page.fill("#textinput", "Yes, please.")
        await page.press("#textinput", "Enter")
        await page.wait_for_selector("#outcome:not([hidden])", timeout=15000)
        assert "booking" in await page.inner_text("#outcome")
        await transcript_has(page, "is booked")
        await bot_finished(page, 4)
        await page.screenshot(path=str(ARTIFACTS / "browser-restaurant.png"), full_page=True)
        await page.click("#hangup")
        await page.wait_for_selector("#status.ended", timeout=10000)
    await released(restaurant_server.url)
