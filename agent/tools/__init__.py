"""The agent's tools: one small module each, with a JSON schema for its arguments."""
