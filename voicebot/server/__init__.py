"""``voicebot serve``: live calls over WebRTC (``app``), their lifecycle (``calls``), metrics."""
