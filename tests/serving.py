"""Start `python -m kit serve` in its own process for a test, and wait for the address it prints."""
import os
import re
import subprocess
import sys
import time


def start_cli_server(*flags: str, wait_s: float = 180) -> tuple[subprocess.Popen, str | None, list[str]]:
    """(process, base url or None if it never printed one within wait_s, the lines it printed).
    The caller stops the process (terminate/kill) in a `finally`."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "kit", "serve", "--model", "smollm2-135m-instruct",
                                "--port", "0", *flags],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    url, deadline, seen = None, time.time() + wait_s, []
    while url is None and time.time() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        match = re.search(r"(http://127\.0\.0\.1:\d+)/v1", line)
        url = match.group(1) if match else None
    return process, url, seen
