"""Cove: a self-hostable, multi-tenant Platform-as-a-Service."""

__version__ = "0.1.0"
