"""A Python example app for the Python buildpack: stdlib HTTP server plus one dependency."""

import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import six

MESSAGE = "python says hi"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"{MESSAGE} (six {six.__version__}, {os.environ.get('COVE_RELEASE')})\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())


def main() -> None:
    server = ThreadingHTTPServer(("", int(os.environ.get("PORT", "8000"))), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("serving", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
