"""Which call a provider request belongs to, without threading a call id through engines.

Engines are shared by every call of a process; the call's stage tasks run with
``current_call`` set (``graph.Pipeline.run``), and what they start inherits it, so a
request made deep inside an engine is still billed to the right call.
"""

from __future__ import annotations

from contextvars import ContextVar

current_call: ContextVar[str] = ContextVar("voicebot_current_call", default="")
