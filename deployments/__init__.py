"""The Ray Serve deployments, one module each (stt, llm, tts, agent, ingress), thin over the engines."""
