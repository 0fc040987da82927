"""Flow checks beyond keys and types: state shapes, references, reachability, dead ends.

Run once every flow file is read (states may refer to states in other files).
Unreachable states and dead ends are warnings: a flow under construction still
runs. A loop of states that never waits for the caller is an error: the engine
would spin on it.
"""

from __future__ import annotations

from typing import Any

from voicebot.dialog.flow import REPEAT, Flow
from voicebot.yamlsrc import NodePath, Reader, YamlFile, did_you_mean

StateRef = tuple[str, YamlFile, NodePath, bool]  # name, where, "@repeat" allowed


def check_graph(
    flow: Flow, refs: list[StateRef], state_at: dict[str, tuple[YamlFile, NodePath]], r: Reader
) -> None:
    states = flow.states
    for name, src, path, repeat in refs:
        if name == REPEAT and not repeat:
            r.err(src, path, "E404", f"{REPEAT!r} only works as a target in 'on' and 'global'")
        elif name != REPEAT and name not in states:
            r.err(src, path, "E404", f"unknown state {name!r}{did_you_mean(name, states)}")
    if not states or flow.start not in states:
        return
    seen = reachable(flow)
    for name, st in states.items():
        src, path = state_at[name]
        if name not in seen:
            r.warn(
                src, path, "W401", f"state {name!r} is unreachable from {flow.start!r}", key=True
            )
        if not st.final and not st.branch and st.ask is None and st.next is None:
            r.warn(
                src,
                path,
                "W402",
                f"dead end: state {name!r} neither asks nor moves on "
                "(add ask, next, end or transfer)",
                key=True,
            )
        elif st.ask is not None and not (st.on or st.collect or st.confirm):
            r.warn(
                src,
                path,
                "W402",
                f"dead end: state {name!r} asks but only global intents leave it (add 'on')",
                key=True,
            )
    for name, chain in loops(flow):
        src, path = state_at[name]
        r.err(
            src,
            path,
            "E417",
            "states loop without waiting for the caller: " + " -> ".join(chain),
            key=True,
        )


def reachable(flow: Flow) -> set[str]:
    """States reachable from ``start``; global handlers count from every waiting state."""
    seen: set[str] = set()
    todo = [flow.start]
    handlers = [t for t in flow.handlers.values() if t in flow.states]
    while todo:
        name = todo.pop()
        if name in seen or name not in flow.states:
            continue
        seen.add(name)
        st = flow.states[name]
        todo += st.targets()
        if st.waits:
            todo += handlers
    return seen


def loops(flow: Flow) -> list[tuple[str, list[str]]]:
    """``next`` chains of non-waiting states that come back to where they started."""
    states = flow.states
    found = []
    for name in states:
        chain, cur = [], name
        while cur in states and not states[cur].waits and not states[cur].branch:
            st = states[cur]
            if st.final or not st.next:
                break
            chain.append(cur)
            cur = st.next
            if cur == name:
                found.append((name, [*chain, cur]))
                break
            if cur in chain:
                break
    return found


def check_shape(src: YamlFile, name: str, data: dict[str, Any], path: NodePath, r: Reader) -> None:
    """One way forward per state: wait (ask), next, branch, end or transfer."""
    ways: list[str] = [k for k in ("end", "transfer", "branch") if k in data]
    if "next" in data and "collect" not in data:
        ways.append("next")
    if "ask" in data:
        ways.append("ask")
    if len(ways) > 1:
        r.err(
            src,
            (*path, ways[1]),
            "E412",
            f"state {name!r} has both {ways[0]!r} and "
            f"{ways[1]!r}: a state either waits (ask), moves on (next, branch) or finishes "
            "(end, transfer)",
            key=True,
        )
    for key in ("on", "confirm", "collect", "reprompt"):
        if key in data and "ask" not in data:
            r.err(
                src,
                (*path, key),
                "E403",
                f"{key!r} needs 'ask' (the question the state waits on)",
                key=True,
            )
    if "collect" in data and "next" not in data:
        r.err(
            src,
            (*path, "collect"),
            "E403",
            "'collect' needs 'next' (where to go once the slot is filled)",
            key=True,
        )
    for key in ("silence", "no_match"):
        if key in data and "ask" not in data:
            r.err(
                src,
                (*path, key),
                "E412",
                f"{key!r} only applies to states that wait (ask)",
                key=True,
            )
    if "confirm" in data and "collect" in data:
        r.err(
            src, (*path, "confirm"), "E412", "a state cannot both 'collect' and 'confirm'", key=True
        )
