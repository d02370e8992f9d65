"""A real Streamlit server for the benches: `streamlit run` on a free local port, stopped afterwards."""
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit(script: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """`streamlit run script` from the repository root; yields (its URL, once its health check
    answers; the server process)."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", script, "--server.port", str(port),
                               "--server.address", "127.0.0.1", "--server.headless", "true"],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/"
        while True:
            try:
                urllib.request.urlopen(url + "_stcore/health", timeout=1).close()
                break
            except OSError:
                if server.poll() is not None:
                    raise RuntimeError(f"streamlit run {script} exited with code {server.returncode}")
                time.sleep(0.05)
        yield url, server
    finally:
        server.terminate()
        server.wait(timeout=30)
