"""The worker process: a loop that would take jobs off a queue."""

import os
import time

while True:
    print(f"working on {os.environ.get('COVE_RELEASE')}", flush=True)
    time.sleep(1)
