"""Crafted checkpoints uploaded to a real server, through Chromium: the server stays up and
responsive for everyone, and the visitor who uploaded gets a clear refusal.

Without isolation each of these files takes the server down: a million-deep tuple key overflows the
C stack (SIGSEGV, every session gone), a 60-level tuple DAG's hash never ends (the GIL held, the
health check silent), a 639-byte file allocates 3 GB. Checked throughout: `/_stcore/health`
answers within 1 s, another visitor's page finishes, and the server's memory stays within 300 MB
of where it was.
"""
import re
import threading
import time
import urllib.request

import pytest

from hostile_checkpoints import deep_tuple_key, huge_bytearray, tuple_dag_key
from test_app_browser import (CHROMIUM, FIRST_RENDER_MS, RERUN_MS, SCREENSHOT_COPY, browser,  # noqa: F401
                              streamlit_server, wait_idle)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not found")]
HEALTH_S = 1.0               # the health check must answer within this, every time
RSS_MB = 300                 # the server's memory may grow at most this much
STALL_MS = 90_000            # the DAG's child is killed after its 30 s; the rerun then shows the refusal


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


class Watch(threading.Thread):
    """Polls the health check and samples the server's memory until stopped."""

    def __init__(self, url: str, pid: int):
        super().__init__(daemon=True)
        self.url, self.pid, self.stopped = f"{url}_stcore/health", pid, threading.Event()
        self.slowest, self.failures, self.peak_mb, self.polls = 0.0, [], 0.0, 0

    def run(self):
        while not self.stopped.is_set():
            start = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=HEALTH_S) as r:
                    ok = r.read().decode().strip() == "ok"
                if not ok:
                    self.failures.append("not ok")
            except OSError as e:
                self.failures.append(f"{type(e).__name__}: {e}")
            self.slowest = max(self.slowest, time.monotonic() - start)
            self.peak_mb = max(self.peak_mb, rss_mb(self.pid))
            self.polls += 1
            self.stopped.wait(0.2)


def open_default_page(browser, url):  # noqa: F811
    from playwright.sync_api import expect
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(url, timeout=FIRST_RENDER_MS)
    expect(page.locator('[data-testid="stMain"]').get_by_text("as the model sees it")).to_be_visible(
        timeout=FIRST_RENDER_MS)
    wait_idle(page, FIRST_RENDER_MS)
    return context, page


def upload_weights(page, path) -> None:
    from playwright.sync_api import expect
    uploader = page.locator('[data-testid="stSidebar"] [data-testid="stFileUploader"]', has_text="Weights file")
    button = uploader.get_by_role("button", name=re.compile(r"^(Browse files|Upload|Add files)$"))
    expect(button).to_have_count(1, timeout=RERUN_MS)
    with page.expect_file_chooser(timeout=RERUN_MS) as chooser:
        button.click()
    chooser.value.set_files(str(path))


def test_crafted_checkpoints_leave_the_server_up_for_everyone(browser, tmp_path):  # noqa: F811
    from playwright.sync_api import expect
    files = {"deep.pth": deep_tuple_key(1_000_000), "huge.pth": huge_bytearray(3_000_000_000),
             "dag.pth": tuple_dag_key(60)}
    expected = {"deep.pth": "refused: it crashed the reader (a file crafted to overflow its stack)",
                "huge.pth": "MB of memory (a file crafted to inflate)",
                "dag.pth": "refused: reading "}     # its CPU limit (20 s) or its wall clock (30 s), whichever first
    with streamlit_server(tmp_path / "server.log") as (url, server):
        visitor, page = open_default_page(browser, url)
        before = rss_mb(server.pid)
        watch = Watch(url, server.pid)
        watch.start()
        sidebar = page.locator('[data-testid="stSidebar"]')
        sidebar.locator('[data-testid="stSelectbox"]', has_text="Model").click()
        page.get_by_role("option", name="Your own checkpoint...").click()
        main = page.locator('[data-testid="stMain"]')
        for name, data in files.items():
            path = tmp_path / name
            path.write_bytes(data)
            upload_weights(page, path)
            if name == "dag.pth":        # while its reader is stuck, another visitor's page finishes
                time.sleep(2)
                other, other_page = open_default_page(browser, url)
                other.close()
            alert = sidebar.locator('[data-testid="stAlertContentError"]')
            expect(alert).to_contain_text(f"Cannot use {name}: ", timeout=STALL_MS)
            expect(alert).to_contain_text(expected[name])
            expect(page.locator('[data-testid="stException"]')).to_have_count(0)
            assert server.poll() is None, f"the server died on {name}"
        SCREENSHOT_COPY.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT_COPY.with_name("hostile_upload.png")))
        # the session still works: back to the bundled model, the page is whole
        sidebar.locator('[data-testid="stSelectbox"]', has_text="Model").click()
        page.get_by_role("option", name=re.compile(r"^cbam-resnet18-shapes")).click()
        expect(main.get_by_text("shapes-circle.png, as the model sees it")).to_be_visible(timeout=RERUN_MS)
        wait_idle(page)
        watch.stopped.set()
        watch.join()
        visitor.close()
    print(f"health: {watch.polls} polls, slowest {watch.slowest:.3f} s; RSS {before:.0f} MB -> peak {watch.peak_mb:.0f} MB")
    assert watch.failures == []
    assert watch.polls > 50 and watch.slowest < HEALTH_S
    assert watch.peak_mb - before < RSS_MB
