"""The speech engines without Ray: audio codecs, sentence splitting, turn detection, Whisper, Piper and NeMo."""
