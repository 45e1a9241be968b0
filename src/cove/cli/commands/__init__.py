"""The command groups of `cove`, one module each."""
