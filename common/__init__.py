"""What every process of June shares: its settings, the records passed between stages, the LLM's client."""
