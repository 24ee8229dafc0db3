"""Local stand-ins for the platforms the bots talk to, speaking their real wire protocols."""
