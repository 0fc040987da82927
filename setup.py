"""The build step that puts the reference bot and the demo page into the wheel.

Everything else is in pyproject.toml. The top-level ``pipelines/``, ``intents/`` and
``demo_web/`` are copied to ``voicebot/_data/`` in the build, where
``voicebot.bundled`` finds them after a pip install.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

BUNDLED = ("pipelines", "intents", "demo_web")


class BuildWithBundled(build_py):
    def run(self) -> None:
        super().run()
        root = Path(__file__).resolve().parent
        for name in BUNDLED:
            target = Path(self.build_lib) / "voicebot" / "_data" / name
            shutil.copytree(
                root / name,
                target,
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )


setup(cmdclass={"build_py": BuildWithBundled})
