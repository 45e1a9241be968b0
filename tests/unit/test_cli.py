"""The CLI's own refusals: usage errors say what to type, client-side errors read like the
API's, and neither is a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def cove(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COVE_CONFIG_DIR=str(tmp_path / "config"),
               COVE_URL="http://127.0.0.1:9")  # nothing listens on the discard port
    return subprocess.run([sys.executable, "-m", "cove.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_a_release_that_is_not_one_is_a_usage_error(tmp_path: Path) -> None:
    proc = cove(tmp_path, "rollback", "hello", "vx", "--space", "alice")
    assert proc.returncode == 2
    assert "'vx' is not a release: give one like v2" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_scale_and_config_arguments_are_checked_before_anything_is_sent(
        tmp_path: Path) -> None:
    scaled = cove(tmp_path, "scale", "hello", "web=three", "--space", "alice")
    assert scaled.returncode == 2 and "use TYPE=COUNT[:SIZE]" in scaled.stderr
    configured = cove(tmp_path, "config", "set", "hello", "NOVALUE", "--space", "alice")
    assert configured.returncode == 2 and "use KEY=VALUE" in configured.stderr


def test_client_side_errors_read_like_the_apis(tmp_path: Path) -> None:
    no_space = cove(tmp_path, "apps")
    assert no_space.returncode == 1
    assert no_space.stderr.strip() == "!    no current space: log in, or pass --space"
    down = cove(tmp_path, "apps", "--space", "alice")
    assert down.returncode == 1 and "cannot reach Cove at http://127.0.0.1:9" in down.stderr
    assert "Traceback" not in down.stderr + no_space.stderr


NGINX_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>"
             b"502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n</body>\r\n"
             b"</html>\r\n")


def answering(status: int, body: bytes, content_type: str = "text/html") -> Any:
    """A server on a loopback port that answers every request with one page."""
    import http.server
    import threading

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_stopped_server_behind_its_router_is_named_not_printed_as_html(
        tmp_path: Path) -> None:
    """With the broker down, nginx in front of it answered 502 and the CLI printed the raw
    HTML page."""
    for status, body, words in (
            (502, NGINX_502, "is not answering (HTTP 502 from the router in front of it)"),
            (404, b"<html><body><h1>Not Found</h1></body></html>",
             "answered HTTP 404 with something that is not Cove's API (Not Found)"),
            (200, b"<html>welcome</html>", "something that is not Cove's API (welcome)")):
        server = answering(status, body)
        try:
            env = dict(os.environ, COVE_CONFIG_DIR=str(tmp_path / "config"),
                       COVE_URL=f"http://127.0.0.1:{server.server_address[1]}")
            proc = subprocess.run([sys.executable, "-m", "cove.cli.main", "apps", "--space",
                                   "alice"], env=env, capture_output=True, text=True,
                                  timeout=60)
        finally:
            server.shutdown()
        assert proc.returncode == 1, proc.stderr
        assert words in proc.stderr
        assert "<" not in proc.stderr and "Traceback" not in proc.stderr
        assert status != 502 or "make run" in proc.stderr


def test_a_push_to_an_app_that_is_not_there_sends_nothing(tmp_path: Path) -> None:
    """The whole tree was packed and uploaded before the server said the app did not
    exist."""
    import http.server
    import json
    import threading

    posted: list[str] = []
    error = json.dumps({"error": {"code": "not_found",
                                  "message": "no app named 'ghost' in space 'alice'"}}).encode()

    class Api(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(error)))
            self.end_headers()
            self.wfile.write(error)

        def do_POST(self) -> None:
            posted.append(self.path)
            do_get = Api.do_GET
            do_get(self)

        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "Dockerfile").write_text("FROM scratch\n")
    try:
        env = dict(os.environ, COVE_CONFIG_DIR=str(tmp_path / "config"),
                   COVE_URL=f"http://127.0.0.1:{server.server_address[1]}")
        proc = subprocess.run([sys.executable, "-m", "cove.cli.main", "push", "ghost",
                               str(tmp_path / "src"), "--space", "alice"], env=env,
                              capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
    assert proc.returncode == 1 and "no app named 'ghost'" in proc.stderr
    assert posted == [] and "uploading" not in proc.stdout
