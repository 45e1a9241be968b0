"""nginx, managed by Cove: rendered config (pure) and the process that serves it."""
