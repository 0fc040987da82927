"""Tests of voicebot.audio: resampler, framer, VAD, denoiser, simulated channels."""
