"""Interfaces (typing.Protocol) that services use and adapters implement."""
