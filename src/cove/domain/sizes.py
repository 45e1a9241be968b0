"""Instance sizes: memory and CPU of one instance, named like Heroku dyno sizes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Size:
    name: str
    memory_mb: int
    cpu_millis: int
    pids: int = 256

    def as_dict(self) -> dict[str, int | str]:
        return {"name": self.name, "memory_mb": self.memory_mb, "cpu_millis": self.cpu_millis,
                "pids": self.pids}
