"""GET from an edgeport health port (``/healthz``, ``/metrics``) in a test, from a thread.

A refused or broken connection is status 0 (the process is not listening yet, or
has gone), so a readiness loop can poll it; an HTTP error is its status and body.
"""

from __future__ import annotations

import urllib.error
import urllib.request

import trio

TIMEOUT_SECONDS = 5


async def http_get(port: int, path: str, timeout: float = TIMEOUT_SECONDS) -> tuple[int, str]:
    """``GET http://127.0.0.1:<port><path>``: the status and the body as text."""

    def fetch() -> tuple[int, str]:
        url = f"http://127.0.0.1:{port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as answer:
                return int(answer.status), answer.read().decode()
        except urllib.error.HTTPError as error:
            return int(error.code), error.read().decode()
        except OSError:
            return 0, ""

    return await trio.to_thread.run_sync(fetch)
