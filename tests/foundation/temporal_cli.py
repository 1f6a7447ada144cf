"""A bare Temporal dev server (no custom search attributes, as someone else or an auto-setup image runs one), and
what the `temporal` CLI lists on a server: for the tests of what registers the project's search attributes."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator

from core.devstack import wait_for_port
from tests.services import TEMPORAL_CLI, free_port


@contextlib.contextmanager
def bare_temporal_server() -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        [str(TEMPORAL_CLI), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port), "--headless"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port, 60, "Temporal", server)
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def listed_search_attributes(address: str) -> dict[str, str]:
    """Name -> type of every search attribute on the server."""
    output = subprocess.run(
        [str(TEMPORAL_CLI), "operator", "search-attribute", "list", "--address", address],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {parts[0]: parts[1] for line in output.splitlines() if len(parts := line.split()) >= 2}
