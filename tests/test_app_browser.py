"""The app in a real browser: upload an image through the file chooser and inspect its attention.

Starts `streamlit run serve.py` (the README's command) on a free local port, waits for it to warm
the default page, and drives Debian's Chromium with Playwright the way a person would: open the
page's Image chooser, drop a file on its uploader through the file chooser, wait for the rerun, look
at the page; and at a projector's 1280 x 720 and a phone's 390 x 844, where the first map must sit.
Skipped only where /usr/bin/chromium is missing (CI installs it).
"""
import contextlib
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT_COPY = ROOT / "out" / "browser" / "upload_and_inspect.png"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CHROMIUM.exists(), reason=(
    f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium) to run the browser test"))]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SERVER_START_S = 120         # until /_stcore/health answers: imports, loads and warms the default page
FIRST_RENDER_MS = 120_000    # first page: imports torch, loads the bundled model (slow on a busy 2-core box)
RERUN_MS = 60_000            # a rerun after an upload
POLL_S = 0.25


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(log_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """`streamlit run serve.py` on a free local port, once it answers its health check and has warmed
    the default page: (its URL, its process)."""
    port = free_port()
    log = open(log_path, "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "serve.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def server_log() -> str:
        log.flush()
        return log_path.read_text(errors="replace")[-4000:]

    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"streamlit exited with code {server.returncode}:\n{server_log()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    if r.read().decode().strip() == "ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer /_stcore/health within {SERVER_START_S} s:\n{server_log()}")
            time.sleep(POLL_S)
        # serve.py computes the default page before it accepts connections: no visitor waits for it
        assert "warm-up: the default page is ready (ok)" in server_log(), server_log()
        yield f"http://127.0.0.1:{port}/", server
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)
        log.close()


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    with streamlit_server(tmp_path_factory.mktemp("streamlit") / "server.log") as (url, _):
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright     # requirements-dev.txt: a missing package fails
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def picture(path: Path) -> Path:
    """A 200 x 150 photo-like PNG: a bright filled circle on a dark, noisy, striped background."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:150, 0:200]
    base = 30 + 15 * np.sin((xx + yy) / 9.0)[..., None] + rng.normal(0, 8, (150, 200, 3))
    base *= np.array([0.8, 0.9, 1.2])
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.7))
    ImageDraw.Draw(image).ellipse((70, 35, 150, 115), fill=(250, 220, 40), outline=(255, 255, 200), width=3)
    image.save(path)
    return path


def wait_idle(page, timeout_ms: int = RERUN_MS) -> None:
    """Until Streamlit has finished running the script: no status widget ("Running..."), no stale
    elements, several polls in a row."""
    deadline = time.monotonic() + timeout_ms / 1000
    calm = 0
    while calm < 3:
        busy = page.evaluate("""() => !!document.querySelector('[data-testid="stStatusWidget"]')
                                     || !!document.querySelector('[data-stale="true"]')""")
        calm = 0 if busy else calm + 1
        if time.monotonic() > deadline:
            raise AssertionError(f"Streamlit still running after {timeout_ms / 1000:.0f} s")
        page.wait_for_timeout(POLL_S * 1000)


def open_image_chooser(page) -> None:
    """Open the page's Image chooser (an expander above the views) unless it is open."""
    from playwright.sync_api import expect
    uploader = page.locator('[data-testid="stMain"] [data-testid="stFileUploader"]', has_text="Drop an image")
    if not uploader.is_visible():
        page.locator('[data-testid="stExpander"] summary', has_text="upload yours").click()
    expect(uploader).to_be_visible(timeout=RERUN_MS)


def choose_file(page, path: Path) -> None:
    """Through the real file chooser, as a person would: open the Image chooser, click its uploader's
    button. Streamlit calls it "Upload" ("Browse files" in older releases), and "Add files" once a file
    is there: in a single-file uploader the chosen file then replaces the old one, which the chip check
    below confirms."""
    from playwright.sync_api import expect
    open_image_chooser(page)
    uploader = page.locator('[data-testid="stMain"] [data-testid="stFileUploader"]', has_text="Drop an image")
    button = uploader.get_by_role("button", name=re.compile(r"^(Browse files|Upload|Add files)$"))
    expect(button).to_have_count(1, timeout=RERUN_MS)
    with page.expect_file_chooser(timeout=RERUN_MS) as chooser:
        button.click()
    assert not chooser.value.is_multiple(), "the image uploader should take one file"
    chooser.value.set_files(str(path))
    chip = uploader.locator('[data-testid="stFileChipName"], [data-testid="stFileUploaderFileName"]')
    expect(chip).to_have_text([path.name], timeout=RERUN_MS)      # exactly one file: the new one


def assert_no_errors(page) -> None:
    from playwright.sync_api import expect
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    expect(page.locator('[data-testid="stAlertContentError"]')).to_have_count(0)


def assert_inspected(page, name: str) -> None:
    """What a person sees after analysing `name`: the model input, predictions, heatmap, channel chart."""
    from playwright.sync_api import expect
    main = page.locator('[data-testid="stMain"]')
    header = main.get_by_text(f"{name}, as the model sees it")
    expect(header).to_be_visible(timeout=RERUN_MS)
    wait_idle(page)
    expect(header).to_have_count(1)
    main.get_by_text("Top 5 predictions and the model card").click()
    table = main.locator('[data-testid="stDataFrame"]')
    expect(table).to_have_count(1)
    expect(table.locator("canvas, table").first).to_be_visible()
    images = main.locator('[data-testid="stImage"] img')
    expect(images.nth(1)).to_be_visible(timeout=RERUN_MS)          # model input + heatmap overlay
    sizes = page.evaluate("""() => Array.from(document.querySelectorAll(
        '[data-testid="stMain"] [data-testid="stImage"] img')).map(i => [i.complete, i.naturalWidth])""")
    assert len(sizes) >= 2 and all(done and width > 0 for done, width in sizes), sizes
    chart = main.locator('[data-testid="stVegaLiteChart"]')
    expect(chart.locator("canvas, svg").first).to_be_visible(timeout=RERUN_MS)
    assert_no_errors(page)


def full_page_screenshot(page, path: Path) -> None:
    """Streamlit scrolls inside its main container, not the document: grow the viewport to the
    content's height so the screenshot holds the whole page, then put it back."""
    size = page.viewport_size
    height = page.evaluate("""() => Math.max(...['stMain', 'stAppViewContainer', 'stSidebarContent'].map(
        id => document.querySelector(`[data-testid="${id}"]`)?.scrollHeight || 0))""")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height), 8000))})
    try:
        wait_idle(page)
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(size)


def test_upload_and_inspect(app_url, page, tmp_path):
    from playwright.sync_api import expect

    good = picture(tmp_path / "upload_test.png")
    broken = tmp_path / "broken.png"
    broken.write_bytes(random.Random(0).randbytes(4096))

    # The default page: the bundled model on a sample image.
    page.goto(app_url, timeout=FIRST_RENDER_MS)
    main = page.locator('[data-testid="stMain"]')
    expect(main.get_by_text("shapes-circle.png, as the model sees it")).to_be_visible(timeout=FIRST_RENDER_MS)
    wait_idle(page, FIRST_RENDER_MS)
    assert_no_errors(page)
    expect(main.get_by_role("heading", name="On the object? Against baselines")).to_be_visible()   # a masked sample
    expect(main.locator('[data-testid="stDataFrame"]')).to_have_count(2)          # predictions + the baselines

    choose_file(page, good)
    assert_inspected(page, "upload_test.png")

    shot = tmp_path / "upload_and_inspect.png"
    full_page_screenshot(page, shot)
    SCREENSHOT_COPY.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT_COPY)
    print(f"screenshot: {shot} (copy: {SCREENSHOT_COPY})")

    # A corrupt file replaces it: the app says what is wrong, no traceback.
    choose_file(page, broken)
    alert = main.locator('[data-testid="stAlertContentError"]')
    expect(alert).to_contain_text("Cannot use broken.png: not an image in a supported format", timeout=RERUN_MS)
    wait_idle(page)
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    expect(main.locator('[data-testid="stDataFrame"]')).to_have_count(0)

    # The good image again: the session still works.
    choose_file(page, good)
    expect(alert).to_have_count(0, timeout=RERUN_MS)
    assert_inspected(page, "upload_test.png")
    assert os.path.getsize(shot) > 10_000

    # Grad-CAM beside the gate: a toggle, then a second map and the rank agreement.
    main.get_by_text("Grad-CAM: what raises a class's score at this block").click()
    expect(main.get_by_text("Rank agreement with the block's map")).to_be_visible(timeout=RERUN_MS)
    wait_idle(page)
    expect(main.locator('[data-testid="stImageCaption"]', has_text="stretched to this map's range")).to_have_count(1)
    assert_no_errors(page)
    cam_shot = tmp_path / "grad_cam.png"
    full_page_screenshot(page, cam_shot)
    shutil.copyfile(cam_shot, SCREENSHOT_COPY.with_name("grad_cam.png"))

    # The sanity check: the same block on a randomised copy of the model, two agreements.
    main.get_by_text("Sanity check: re-initialise the weights from this block on").click()
    expect(main.get_by_text(re.compile(r"rank correlation with the trained model's over 16 cells, 3 seeds"))
           ).to_have_count(2, timeout=RERUN_MS)                       # the block's map and its Grad-CAM
    wait_idle(page)
    assert_no_errors(page)
    full_page_screenshot(page, tmp_path / "sanity.png")
    shutil.copyfile(tmp_path / "sanity.png", SCREENSHOT_COPY.with_name("sanity.png"))

    # Does the model use what the map marks? Deletion and insertion beside the random band.
    main.get_by_text(re.compile(r"^Measure it: remove what each map ranks highest")).click()
    expect(main.get_by_text("What this does and does not show")).to_be_visible(timeout=RERUN_MS)
    wait_idle(page)
    assert_no_errors(page)
    charts = main.locator('[data-testid="stVegaLiteChart"]')
    expect(charts).to_have_count(3)                                   # channel weights, deletion, insertion
    expect(charts.nth(2).locator("canvas, svg").first).to_be_visible()
    expect(main.get_by_text(re.compile(r"deletion AUC \d\.\d{3}, lower is better"))).to_have_count(1)
    full_page_screenshot(page, tmp_path / "faithfulness.png")
    shutil.copyfile(tmp_path / "faithfulness.png", SCREENSHOT_COPY.with_name("faithfulness.png"))

    # Intervene: switch the block's attention off; the maps before and after, and what it means.
    main.get_by_text("Intervene", exact=True).click()
    main.get_by_text("switch this block's attention off (gates = 1)").click()
    expect(main.get_by_text("Nothing to draw: the edit switched this gate off")).to_be_visible(timeout=RERUN_MS)
    wait_idle(page)
    expect(main.get_by_text(re.compile(r"the probability of '"))).to_have_count(1)     # raised, lowered or not
    shared = main.locator('[data-testid="stImageCaption"]', has_text="class evidence, one scale for the maps side by side")
    expect(shared).to_have_count(2)
    sizes = page.evaluate("""() => Array.from(document.querySelectorAll(
        '[data-testid="stMain"] [data-testid="stImage"] img')).map(i => [i.complete, i.naturalWidth, i.width])""")
    assert len(sizes) == 1 + 3 + 4 and all(done and natural > 0 for done, natural, _ in sizes), sizes
    assert sizes[0][2] >= 60 and all(shown >= 150 for _, _, shown in sizes[1:]), sizes   # the header's thumbnail, maps
    assert_no_errors(page)
    full_page_screenshot(page, tmp_path / "intervene.png")
    shutil.copyfile(tmp_path / "intervene.png", SCREENSHOT_COPY.with_name("intervene.png"))

    # Downloads: a figure rendered on click, named after the image and the model.
    main.get_by_text("Downloads", exact=True).click()
    button = main.get_by_role("button", name="layer4.1 channel weights (PNG)")
    expect(button).to_be_visible(timeout=RERUN_MS)
    wait_idle(page)
    with page.expect_download(timeout=RERUN_MS) as download:
        button.click()
    assert download.value.suggested_filename == "upload_test_cbam-resnet18-shapes_layer4.1_channels.png"
    assert Path(download.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # two clicks in quick succession: a download reruns nothing, so the second file is still there
    with page.expect_download(timeout=RERUN_MS) as csv:
        main.get_by_role("button", name="All channel weights (CSV)").click()
    with page.expect_download(timeout=RERUN_MS) as as_json:
        main.get_by_role("button", name="All weights and predictions (JSON)").click()
    assert Path(csv.value.path()).read_text().startswith("block,kind,channel,weight")
    assert json.loads(Path(as_json.value.path()).read_text())["image"] == "upload_test.png"
    assert_no_errors(page)


@pytest.mark.parametrize("width, height, phone", [(1280, 720, False), (390, 844, True)])
def test_the_first_map_is_above_the_fold(app_url, browser, width, height, phone):
    """A projector's 1280 x 720 and a phone's 390 x 844: without scrolling, the first map's top edge
    is on screen, and so is the way to upload (on a phone the sidebar is folded away)."""
    from playwright.sync_api import expect
    context = browser.new_context(viewport={"width": width, "height": height}, is_mobile=phone, has_touch=phone)
    page = context.new_page()
    try:
        page.goto(app_url, timeout=FIRST_RENDER_MS)
        main = page.locator('[data-testid="stMain"]')
        expect(main.locator('[data-testid="stImage"] img').nth(1)).to_be_visible(timeout=FIRST_RENDER_MS)
        wait_idle(page, FIRST_RENDER_MS)
        assert_no_errors(page)
        tops = page.evaluate("""() => Array.from(document.querySelectorAll(
            '[data-testid="stMain"] [data-testid="stImage"] img')).map(i => i.getBoundingClientRect().top)""")
        assert 0 < tops[1] < height, tops                    # [0] is the header's thumbnail, [1] the first map
        chooser = main.locator('[data-testid="stExpander"] summary', has_text="upload yours")
        assert 0 <= chooser.bounding_box()["y"] < height / 2
        if phone:
            expect(page.locator('[data-testid="stSidebarContent"]')).not_to_be_in_viewport()
        shot = SCREENSHOT_COPY.with_name(f"first_screen_{width}x{height}.png")
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot))
        print(f"screenshot: {shot}")
    finally:
        context.close()
