"""One module per Ray Serve deployment (stt, llm, tts, chat, ingress) and the plain engines they wrap."""
