"""The app pushed to Cove and to other git-push platforms alike by bench/push_to_200.py."""

from flask import Flask

MARKER = "first"

app = Flask(__name__)


@app.get("/")
def index() -> str:
    return f"flask says {MARKER}\n"
