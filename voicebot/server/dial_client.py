"""``voicebot call sip:…``: ask a running server to place a phone call and follow it.

``POST /calls`` on ``--server`` (the bearer token from ``--token-env``, as the
server reads it), then ``GET /calls/{id}`` every half second until the call
is over, printing each status. Exit code 0 when the call was answered, 1 when
it was not (busy, no answer, failed), 2 when the server refused the request.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import httpx

from voicebot.server.serve import TOKEN_ENV

FINAL = frozenset({"busy", "no_answer", "failed", "cancelled", "ended"})
POLL_INTERVAL = 0.5  # s


def add_call_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "call", help="have a running server (voicebot serve --sip-port) place a phone call"
    )
    p.add_argument("to", metavar="URI", help="whom to call: sip:+15551234@trunk.example")
    p.add_argument(
        "--server", default="http://127.0.0.1:8000", help="the server (default %(default)s)"
    )
    p.add_argument(
        "--token-env",
        default=TOKEN_ENV,
        metavar="VAR",
        help=f"environment variable with the server's bearer token (default {TOKEN_ENV})",
    )
    p.add_argument("--ring-timeout", type=float, default=None, help="seconds to let it ring")
    p.add_argument(
        "--no-follow", dest="follow", action="store_false", help="print the call id and return"
    )
    p.set_defaults(func=call_main)
    return p


def call_main(args: argparse.Namespace) -> int:
    token = os.environ.get(args.token_env)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body: dict[str, Any] = {"to": args.to}
    if args.ring_timeout is not None:
        body["ring_timeout"] = args.ring_timeout
    with httpx.Client(base_url=args.server, headers=headers, timeout=10.0) as client:
        try:
            response = client.post("/calls", json=body)
        except httpx.HTTPError as exc:
            print(f"error: {args.server}: {exc}", file=sys.stderr)
            return 2
        if response.status_code != 202:
            print(f"error: {response.status_code}: {_message(response)}", file=sys.stderr)
            return 2
        call = response.json()
        print(f"call {call['call_id']}: {call['status']}", flush=True)
        answered = False
        while args.follow and call["status"] not in FINAL:
            time.sleep(POLL_INTERVAL)
            latest = client.get(f"/calls/{call['call_id']}").json()
            if latest["status"] != call["status"]:
                print(f"call {latest['call_id']}: {_describe(latest)}", flush=True)
            answered = answered or latest["status"] in ("answered", "ended")
            call = latest
    return 0 if answered or not args.follow else 1


def _describe(call: dict[str, Any]) -> str:
    text = str(call["status"])
    if call.get("sip_status"):
        text += f" ({call['sip_status']})"
    if call.get("reason"):
        text += f": {call['reason']}"
    return text


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text))
    except ValueError:
        return response.text
