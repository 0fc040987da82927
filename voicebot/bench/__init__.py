"""``voicebot bench NAME``: the benchmarks, one module each, measured on this machine.

``loop`` (the voice loop's figures), ``match`` (intent matching speed),
``calls`` (live WebRTC callers against a server), ``providers`` (speech
provider latency, first byte, throughput, cost), ``understanding`` (the
corpora spoken through the audio paths, recognised and matched) and
``resample`` (the audio hot path's per-frame costs, part of ``loop``).
``stats`` holds the one percentile definition they all report with;
``command`` is the subcommand's options and dispatch. Each prints a table and
writes JSON; the targets live here rather than in timed tests.
"""
