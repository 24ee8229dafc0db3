"""Telegram and Discord bots; they speak HTTP to the graph and never import deployments."""
