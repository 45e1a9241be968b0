"""Is this machine ready to run Cove: what it needs, and the checks of `cove-server doctor`."""
