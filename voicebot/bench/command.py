"""``voicebot bench NAME``: the subcommand's options, and its dispatch to the NAME module."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

BENCHMARKS = ("loop", "match", "calls", "providers", "understanding", "echo")


def add_bench_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``bench`` to the ``voicebot`` command's subparsers."""
    from voicebot.bench import calls, echo, providers, understanding

    bench: argparse.ArgumentParser = subparsers.add_parser(
        "bench", help="benchmarks (print a table, write JSON)"
    )
    bench.add_argument(
        "what",
        choices=BENCHMARKS,
        help="loop: the voice loop's figures; match: intent matching speed; "
        "calls: WebRTC callers against a server; providers: speech provider "
        "latency, first byte, throughput, cost; understanding: the corpora "
        "spoken through the audio paths, recognised and matched; echo: the bot's own voice "
        "fed back by a simulated phone line, with and without the echo canceller",
    )
    bench.add_argument("--pipeline", default=None, help="pipeline YAML (default: echo)")
    bench.add_argument(
        "--json", dest="json_path", default=None, help="JSON output (default: bench-NAME.json)"
    )
    bench.add_argument("--repeat", type=int, default=5, help="repetitions per measurement")
    bench.add_argument("--fast", action="store_true", help="run the voice loop with the fast clock")
    calls.add_arguments(bench)
    providers.add_arguments(bench)
    understanding.add_arguments(bench)
    echo.add_arguments(bench)
    bench.set_defaults(func=bench_main)
    return bench


def bench_main(args: argparse.Namespace) -> int:
    """Run the benchmark ``args.what`` names; returns the exit code."""
    if args.json_path is None:
        args.json_path = f"bench-{args.what}.json"
    module = importlib.import_module(f"voicebot.bench.{args.what}")
    result: int = module.main(args)
    return result
