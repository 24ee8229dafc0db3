"""The June application graph and the command line that runs it."""
