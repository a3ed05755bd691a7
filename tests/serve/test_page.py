"""The web page at `/`, end to end in headless Chromium (Debian's /usr/bin/chromium driven by Playwright)."""

from __future__ import annotations

import base64
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from kiln_serving import running  # noqa: E402

CHROMIUM = os.environ.get("KILN_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
SCREENSHOT = os.environ.get("KILN_PAGE_SCREENSHOT")  # set to keep the screenshot somewhere you can look at it

# Skipped only outside CI: .ci/run installs chromium, so under CI=true a missing browser is a failure.
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                                reason=f"{CHROMIUM} is missing; .ci/run installs Debian's chromium")


@pytest.fixture(scope="module")
def page_url(tiny_run):
    from kiln.serve.app import create_app

    with running(create_app(tiny_run.path, max_delay_ms=1)) as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh --user-data-dir
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS,
                                                       viewport={"width": 1100, "height": 640})
        yield context
        context.close()


def _rows(page):
    return page.eval_on_selector_all("#results li", """rows => rows.map(li => ({
        label: li.querySelector('.label').textContent,
        score: parseFloat(li.dataset.score),
        width: parseFloat(li.querySelector('.fill').style.width)}))""")


def test_pick_an_image_and_see_top_classes(browser, page_url, tiny_run, tmp_path):
    rows = tiny_run.splits[tiny_run.splits["split"] == "test"]
    path_a, path_b = rows["path"].iloc[0], rows["path"].iloc[-1]
    expected_a, expected_b = tiny_run.predict([path_a, path_b], top_k=5)

    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(page_url + "/")
    assert page.inner_text("#model-name") == "tiny"
    assert "3 classes" in page.inner_text("#model-meta") and "32×32×3" in page.inner_text("#model-meta")
    assert page.is_hidden("#key-row")  # no API key on this server

    # pick: the file input behind the drop zone
    page.set_input_files("#file", path_a)
    page.wait_for_function("document.querySelectorAll('#results li').length === 3")
    got = _rows(page)
    assert [r["label"] for r in got] == [label for label, _ in expected_a["top_k"]]
    for row, (_, score) in zip(got, expected_a["top_k"]):
        assert row["score"] == pytest.approx(score, abs=1e-5)
        assert row["width"] == pytest.approx(100 * score, abs=0.01)  # the bar is the score
    assert page.inner_text("#top").startswith(expected_a["label"])
    assert page.inner_text("#latency").startswith("latency: server ")
    assert "ms · round trip" in page.inner_text("#latency")
    assert page.get_attribute("#preview", "src").startswith("blob:")

    # drop: a real drop event carrying a File, as a drag from the desktop delivers it
    data = base64.b64encode(Path(path_b).read_bytes()).decode()
    transfer = page.evaluate_handle("""data => {
        const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], 'dropped.png', {type: 'image/png'}));
        return dt; }""", data)
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
    page.wait_for_function("document.querySelector('#drop-text').textContent.includes('dropped.png')")
    page.wait_for_function("label => document.querySelector('#top').textContent.startsWith(label) && "
                           "document.querySelectorAll('#results li').length === 3", arg=expected_b["label"])
    assert [r["label"] for r in _rows(page)] == [label for label, _ in expected_b["top_k"]]

    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 5000
    if SCREENSHOT:
        shutil.copy(shot, SCREENSHOT)

    # an upload that is not an image: the server's error is shown, not a stale result
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"not really a png")
    page.set_input_files("#file", str(bad))
    page.wait_for_function("document.querySelector('#error').textContent.length > 0")
    assert "could not be decoded" in page.inner_text("#error")
    assert page.eval_on_selector_all("#results li", "rows => rows.length") == 0
    assert errors == []
    page.close()
