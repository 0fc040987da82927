"""The ``voicebot`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from voicebot import runtime
from voicebot.diagnostics import ConfigError


def _cmd_check(args: argparse.Namespace) -> int:
    from voicebot.dialog.check import check_paths

    return check_paths(args.files)


def _cmd_test_dialog(args: argparse.Namespace) -> int:
    from voicebot.dialog.testing import run_files

    return run_files(args.files, verbose=args.verbose_tests)


def _cmd_outcomes(args: argparse.Namespace) -> int:
    import json

    from voicebot.dialog.outcomes import DEFAULT_DB, format_outcomes, read_outcomes

    db = args.db
    if db is None and args.pipeline:
        from voicebot.config import load_pipeline

        try:
            config = load_pipeline(args.pipeline)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
        db = config.dialog.outcomes or None
    path = Path(db) if db else DEFAULT_DB
    outcomes = read_outcomes(path, limit=args.last)
    if args.json:
        print(json.dumps([o.as_dict() for o in outcomes], ensure_ascii=False, indent=2))
    else:
        print(format_outcomes(outcomes) if path.exists() else f"no outcome store at {path}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from voicebot.config import load_pipeline
    from voicebot.runner import run_file, summary

    try:
        config = load_pipeline(args.pipeline)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.outcomes_db:
        config.dialog.outcomes = str(Path(args.outcomes_db).resolve())
    if config.dialog.type == "flow":
        from voicebot.dialog.bot import load_bot

        try:
            load_bot(config)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
    if not Path(args.input).is_file():
        print(f"error: input file {args.input} does not exist", file=sys.stderr)
        return 2
    result = runtime.run(
        run_file(
            config,
            args.input,
            args.output,
            args.events,
            fast=args.fast,
            tail=args.tail,
            mix=args.mix,
        )
    )
    print(summary(result))
    print(f"bot audio: {args.output}" + (f", events: {args.events}" if args.events else ""))
    # A flow ending the call (its `end` or a transfer) is as good as the input running out.
    return 0 if result.reason in ("completed", "bot_hangup", "transfer") else 1


def _cmd_init(args: argparse.Namespace) -> int:
    import shutil

    from voicebot.bundled import bundled

    target = Path(args.directory)
    clash = [name for name in ("pipelines", "intents") if (target / name).exists()]
    if clash and not args.force:
        print(
            f"error: {target} already has {', '.join(clash)} (use --force to overwrite)",
            file=sys.stderr,
        )
        return 2
    for name in ("pipelines", "intents"):
        shutil.copytree(
            bundled(name),
            target / name,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
    print(
        f"the reference bot is in {target}: edit {target / 'intents'} (intents and flow), "
        f"then run\n  voicebot check {target / 'pipelines' / 'restaurant.yaml'}\n"
        f"  voicebot serve {target / 'pipelines' / 'restaurant.yaml'}"
    )
    return 0


def _cmd_make_caller(args: argparse.Namespace) -> int:
    from voicebot.samples import write_caller

    spans = write_caller(
        args.output, args.utterances, pause=args.pause, language=args.language, rate=args.rate
    )
    for (start, end), text in zip(spans, args.utterances, strict=True):
        print(f"{start:6.2f}-{end:6.2f}s  {text}")
    print(f"caller audio: {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicebot",
        description="voicebot: a real-time voice-bot pipeline engine. Bots "
        "and pipelines are YAML; everything runs offline unless a pipeline names a provider.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser(
        "check",
        help="validate pipelines (with their flows and intents), or flow and intent "
        "files given directly",
    )
    check.add_argument("files", nargs="+", metavar="FILE.yaml")
    check.set_defaults(func=_cmd_check)

    test = sub.add_parser("test-dialog", help="run conversation tests against a flow (text only)")
    test.add_argument("files", nargs="+", metavar="TESTS.yaml")
    test.add_argument(
        "--list", dest="verbose_tests", action="store_true", help="also list the tests that passed"
    )
    test.set_defaults(func=_cmd_test_dialog)

    outcomes = sub.add_parser("outcomes", help="list committed outcomes (bookings)")
    outcomes.add_argument("--json", action="store_true", help="JSON instead of a table")
    outcomes.add_argument("--db", help="outcome database (default: var/outcomes.db)")
    outcomes.add_argument("--pipeline", help="use this pipeline's outcome store")
    outcomes.add_argument("--last", type=int, default=None, help="only the last N")
    outcomes.set_defaults(func=_cmd_outcomes)

    run = sub.add_parser("run", help="run one offline call from a caller WAV")
    run.add_argument("pipeline", metavar="PIPELINE.yaml")
    run.add_argument("--input", "-i", required=True, help="caller audio (WAV or anything av reads)")
    run.add_argument("--output", "-o", required=True, help="bot audio WAV, aligned with the input")
    run.add_argument("--events", "-e", help="write events as JSON lines here")
    run.add_argument("--fast", action="store_true", help="skip idle time (same event times)")
    run.add_argument("--tail", type=float, default=1.0, help="seconds of silence after the input")
    run.add_argument("--mix", help="also write a stereo WAV: caller left, bot right")
    run.add_argument("--outcomes-db", help="outcome store for this run (overrides the pipeline)")
    run.set_defaults(func=_cmd_run)

    init = sub.add_parser(
        "init",
        help="copy the reference bot (pipelines, intents, flow, tests) into a folder to edit",
    )
    init.add_argument("directory", metavar="DIR")
    init.add_argument("--force", action="store_true", help="overwrite what is there")
    init.set_defaults(func=_cmd_init)

    caller = sub.add_parser("make-caller", help="synthesize a caller WAV with the bundled voices")
    caller.add_argument("output", metavar="OUT.wav")
    caller.add_argument("utterances", nargs="+", metavar="TEXT", help="what the caller says")
    caller.add_argument("--pause", type=float, default=2.5, help="seconds between utterances")
    caller.add_argument("--language", default="en", help="en (Piper) or an espeak-ng voice")
    caller.add_argument("--rate", type=int, default=16000, help="sample rate of the WAV")
    caller.set_defaults(func=_cmd_make_caller)

    from voicebot.batch import add_batch_parsers
    from voicebot.bench.command import add_bench_parser
    from voicebot.server.dial_client import add_call_parser
    from voicebot.server.serve import add_serve_parser
    from voicebot.server.speech_server import add_speech_server_parser

    add_bench_parser(sub)
    add_serve_parser(sub)
    add_call_parser(sub)
    add_speech_server_parser(sub)
    add_batch_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
