"""The Study view in a real browser: run the live study on fresh shapes and look at it (a
screenshot in out/browser/study.png). Same server and browser as tests/test_app_browser.py."""
import json
import shutil
from pathlib import Path

import pytest

from test_app_browser import (CHROMIUM, FIRST_RENDER_MS, SCREENSHOT_COPY, app_url, assert_no_errors,  # noqa: F401
                              browser, full_page_screenshot, page, wait_idle)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not found")]
STUDY_MS = 300_000           # 500 images through the model on a busy 2-core machine


def test_run_and_read_a_live_study(app_url, page, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    page.goto(app_url, timeout=FIRST_RENDER_MS)
    main = page.locator('[data-testid="stMain"]')
    expect(main.get_by_text("shapes-circle.png, as the model sees it")).to_be_visible(timeout=FIRST_RENDER_MS)
    wait_idle(page, FIRST_RENDER_MS)
    main.get_by_text("Study", exact=True).click()
    expect(main.get_by_text("Run a small study here")).to_be_visible(timeout=FIRST_RENDER_MS)
    main.get_by_role("button", name="Run the study").click()
    expect(main.get_by_text("Class specificity over depth.")).to_be_visible(timeout=STUDY_MS)
    wait_idle(page, STUDY_MS)
    assert_no_errors(page)
    images = main.locator('[data-testid="stMetric"]', has_text="Images")
    expect(images).to_contain_text("500")
    expect(main.locator('[data-testid="stVegaLiteChart"]')).to_have_count(2)     # specificity, excitations
    expect(main.locator('[data-testid="stImage"] img').last).to_be_visible()      # the classes' mean maps
    shot = tmp_path / "study.png"
    full_page_screenshot(page, shot)
    shutil.copyfile(shot, SCREENSHOT_COPY.with_name("study.png"))
    with page.expect_download(timeout=60_000) as download:
        main.get_by_role("button", name="study.json").click()
    summary = json.loads(Path(download.value.path()).read_text())
    assert summary["images"] == 500 and [b["block"] for b in summary["blocks"]][-1] == "layer4.1"
