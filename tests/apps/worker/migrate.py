"""The release command: runs once per release before it takes traffic; failing fails it."""

import os
import sys

print(f"migrating for {os.environ.get('COVE_RELEASE')}", flush=True)
if os.environ.get("FAIL_RELEASE"):
    print("migration failed", file=sys.stderr)
    sys.exit(1)
