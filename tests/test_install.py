"""voicebot installs like a library: the wheel carries the reference bot and the demo page.

The wheel is built from this checkout and installed into a fresh virtual environment
outside it (its dependencies are taken from this environment's site-packages rather
than installed again), then ``voicebot serve`` with no argument, run from an empty
folder, answers a real WebRTC call with the restaurant bot.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.paths import ROOT
from tests.support.speech import say
from voicebot.server.child import ChildServer
from voicebot.transports.webrtc_client import Caller


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv outside the checkout with only the built wheel installed; returns its bin."""
    base = tmp_path_factory.mktemp("install")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(base / "wheel"),
            str(ROOT),
        ],
        check=True,
        timeout=300,
        cwd=base,
    )
    (wheel,) = (base / "wheel").glob("voicebot-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # the dependencies: this environment's packages, behind the venv's own (a .pth line
    # only adds the folder, so this checkout's editable voicebot is not found)
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=300,
    )
    return venv / "bin"


def test_the_wheel_carries_the_bot_and_the_page(installed: Path) -> None:
    out = subprocess.run(
        [
            str(installed / "python"),
            "-c",
            "import voicebot, voicebot.bundled as b; print(voicebot.__file__); "
            "print(b.pipeline('restaurant')); print(b.bundled('demo_web') / 'index.html')",
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd="/",
    ).stdout.split()
    package, pipeline, page = (Path(line) for line in out)
    assert ROOT not in package.parents, package  # the installed copy, not this checkout
    assert pipeline.is_file() and page.is_file()
    assert package.parent in pipeline.parents and package.parent in page.parents


def test_init_copies_the_reference_bot_to_edit(installed: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(installed / "voicebot"), "init", "mybot"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "mybot" / "intents" / "restaurant_flow.yaml").is_file()
    check = subprocess.run(
        [str(installed / "voicebot"), "check", "mybot/pipelines/restaurant.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0 and "ok" in check.stdout, check.stdout + check.stderr
    again = subprocess.run(
        [str(installed / "voicebot"), "init", "mybot"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 2 and "already has" in again.stderr


def test_help_is_plain_text(installed: Path) -> None:
    out = subprocess.run(
        [str(installed / "voicebot"), "--help"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "``" not in out and ":func:" not in out and "serve" in out


@pytest.fixture(scope="module")
def served(installed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("work")  # an empty folder: nothing of the checkout
    server = ChildServer(
        "serve",
        program=[installed / "voicebot"],
        host="0.0.0.0",
        cwd=work,
        capture=True,
        startup_timeout=180,
    )
    with server:
        yield server.url
    assert (work / "var" / "outcomes.db").is_file()  # bookings go to the working folder


async def test_the_installed_server_answers_a_call(served: str) -> None:
    async with httpx.AsyncClient() as client:
        page = await client.get(served + "/", timeout=10)
    assert page.status_code == 200 and "<html" in page.text.lower()
    utterances = [
        say("Hi, I would like to book a table for two on Saturday at eight pm."),
        say("Yes, please."),
    ]
    async with Caller(served) as caller:
        dialed = time.monotonic()
        answer = await caller.connect()
        assert answer["pipeline"] == "restaurant"
        await caller.reply(dialed, within=20, quiet=1.0)
        for pcm in utterances:
            end = await caller.say(pcm, 16000)
            await caller.reply(end, within=20, quiet=1.0)
    (outcome,) = caller.of_type("outcome")
    assert outcome["slots"]["party_size"] == 2 and outcome["slots"]["time"] == "20:00"
