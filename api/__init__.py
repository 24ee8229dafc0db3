"""June's HTTP layer: the FastAPI app, its schemas, errors and guards, the WebSocket, and the voice page."""
