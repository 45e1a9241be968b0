"""Per-app logs on disk: one k8s-file per instance plus Cove's own events, bounded."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from cove.ports.runtime import LogLine, Stop

MAX_FILES_PER_APP = 40
EVENTS = "cove.log"
_NAME = re.compile(r"^(?P<proc>[a-z0-9-]+)\.(?P<idx>\d+)-v\d+\.log$")


class FileLogs:
    """Engine log files live at <root>/<app_id>/<process>.<index>-v<release>.log.

    They outlive the containers (so a crash's last words stay readable) and the
    oldest files are pruned so an app's logs stay bounded.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)

    def _dir(self, app_id: int) -> Path:
        path = self.root / str(app_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def instance_path(self, app_id: int, process: str, index: int, release: int) -> Path:
        self._prune(app_id)
        return self._dir(app_id) / f"{process}.{index}-v{release}.log"

    def _prune(self, app_id: int) -> None:
        files = sorted(self._dir(app_id).glob("*.log"), key=lambda p: p.stat().st_mtime)
        for old in files[:-MAX_FILES_PER_APP]:
            old.unlink(missing_ok=True)

    def record(self, app_id: int, text: str) -> None:
        stamp = dt.datetime.now(dt.UTC).isoformat()
        with self._lock, (self._dir(app_id) / EVENTS).open("a") as handle:
            for line in text.splitlines() or [""]:
                handle.write(f"{stamp} stdout F {line}\n")

    def forget(self, app_id: int) -> None:
        shutil.rmtree(self.root / str(app_id), ignore_errors=True)

    def _files(self, directory: Path, events: bool) -> list[Path]:
        """Cove's own events (cove.log), or the instances' output (every other file)."""
        return [p for p in directory.glob("*.log") if (p.name == EVENTS) == events]

    def read(self, app_id: int, tail: int) -> list[LogLine]:
        """Cove's events about the app (the Logs port)."""
        return self._read(app_id, tail, events=True)

    def read_instances(self, app_id: int, tail: int) -> list[LogLine]:
        """What the app's instances wrote (the local pool's logs)."""
        return self._read(app_id, tail, events=False)

    def follow(self, app_id: int, tail: int, stop: Stop | None = None) -> Iterator[LogLine]:
        return self._follow(app_id, tail, stop, events=True)

    def follow_instances(self, app_id: int, tail: int,
                         stop: Stop | None = None) -> Iterator[LogLine]:
        return self._follow(app_id, tail, stop, events=False)

    def _read(self, app_id: int, tail: int, events: bool) -> list[LogLine]:
        lines: list[LogLine] = []
        for path in self._files(self._dir(app_id), events):
            with path.open("rb") as handle:
                lines.extend(parse(handle.read(), _source(path)))
        lines.sort(key=lambda line: line.time)
        return lines[-tail:] if tail > 0 else []

    def _follow(self, app_id: int, tail: int, stop: Stop | None,
                events: bool) -> Iterator[LogLine]:
        """Yield the last `tail` lines, then new ones as they are written (until `stop`)."""
        yield from self._read(app_id, tail, events)
        offsets = {p: p.stat().st_size for p in self._files(self._dir(app_id), events)}
        while stop is None or not stop():
            fresh: list[LogLine] = []
            directory = self.root / str(app_id)
            if not directory.exists():
                return  # the app was destroyed
            for path in self._files(directory, events):
                try:
                    size = path.stat().st_size
                except FileNotFoundError:
                    continue
                start = offsets.get(path, 0)
                if size < start:
                    start = 0  # truncated by the engine's size limit
                if size > start:
                    with path.open("rb") as handle:
                        handle.seek(start)
                        chunk = handle.read(size - start)
                    complete = chunk.rfind(b"\n") + 1  # leave half-written lines for later
                    offsets[path] = start + complete
                    fresh.extend(parse(chunk[:complete], _source(path)))
            fresh.sort(key=lambda line: line.time)
            yield from fresh
            time.sleep(0.2)


def _source(path: Path) -> str:
    match = _NAME.match(path.name)
    return f"{match['proc']}.{match['idx']}" if match else "cove"


def parse(data: bytes, source: str) -> list[LogLine]:
    """Parse k8s-file lines: `<RFC3339Nano> <stream> <F|P> <text>`."""
    result = []
    for raw in data.decode("utf-8", "replace").splitlines():
        parts = raw.split(" ", 3)
        if len(parts) < 3:
            continue
        stamp = parse_time(parts[0])
        if stamp is None:
            continue
        result.append(LogLine(stamp, source, parts[3] if len(parts) == 4 else ""))
    return result


def parse_time(value: str) -> dt.datetime | None:
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", value)
    if not match:
        return None
    frac = (match[2] or "0")[:6].ljust(6, "0")
    zone = "+00:00" if match[3] == "Z" else match[3]
    return dt.datetime.fromisoformat(f"{match[1]}.{frac}{zone}")
