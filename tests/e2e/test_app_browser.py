"""The app in a real browser (headless Debian Chromium via Playwright), started the way `make app`
starts it: every page loads without an error, uploading images to Predict draws a hypernym chain
(and reports a broken file by name), and a training job submitted from the Train form runs to the
end in the worker. Screenshots of each step are saved in artifacts/e2e/."""
from __future__ import annotations

import re
import time

import pytest
from PIL import Image

pytestmark = pytest.mark.e2e

# Predict first: the first request to a fresh server is a page URL, not the home page (a direct
# link must not raise Streamlit's "Page not found" dialog).
PAGES = [("predict", "Predict"), ("", "TaxoLens"), ("browse", "Browse"), ("train", "Train"),
         ("results", "Results"), ("geometry", "Geometry"), ("data", "Data")]


def wait_until_idle(page, settle_s: float = 1.5, timeout_s: float = 180) -> None:
    """Until Streamlit has shown no "running" status for `settle_s` seconds."""
    page.locator('[data-testid="stApp"]').wait_for()
    deadline = time.monotonic() + timeout_s
    quiet_since = None
    while time.monotonic() < deadline:
        if page.locator('[data-testid="stStatusWidget"]').count() == 0:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= settle_s:
                return
        else:
            quiet_since = None
        time.sleep(0.2)
    raise AssertionError("the app kept running for too long")


def assert_no_errors(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, "a raw exception is shown"
    dialogs = page.locator('[role="dialog"]').all_inner_texts()
    assert not [d for d in dialogs if "not found" in d.lower()], dialogs
    alerts = page.locator('[data-testid="stAlert"]').all_inner_texts()
    bad = [a for a in alerts if "failed unexpectedly" in a]
    assert not bad, bad


def snap(page, path) -> None:
    """Screenshot of the whole page. Streamlit scrolls inside its main block, not the document, so
    the viewport is stretched to the content's height for the shot (full_page alone would stop at
    the first screen)."""
    height = page.evaluate("() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
                           " return m ? m.scrollHeight : document.body.scrollHeight; }")
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height) + 40, 9000))})
    time.sleep(1.0)                                     # plotly charts re-lay out to the new size
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)


def open_page(page, url: str, path: str, heading: str) -> None:
    page.goto(f"{url}/{path}")
    page.get_by_role("heading", name=re.compile(heading)).first.wait_for()
    wait_until_idle(page)


def test_every_page_loads_without_error(page, app_url, shots):
    for path, heading in PAGES:
        open_page(page, app_url, path, heading)
        assert_no_errors(page)
        snap(page, shots / f"page_{path or 'Home'}.png")


def test_upload_shows_a_chain_and_names_the_broken_file(page, app_url, e2e_data, shots, tmp_path):
    images = sorted((e2e_data / "datasets" / "concepts" / "images").rglob("*.png"))
    first, second = tmp_path / "first.png", tmp_path / "second.jpg"
    first.write_bytes(images[0].read_bytes())
    Image.open(images[-1]).convert("RGB").save(second, format="JPEG")
    broken = tmp_path / "broken.png"
    broken.write_bytes(images[1].read_bytes()[:300])       # truncated PNG

    open_page(page, app_url, "predict", "Predict")
    start = time.monotonic()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files([str(first), str(broken)])
    page.get_by_text("Hypernym chain of").first.wait_for(timeout=300_000)
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
    wait_until_idle(page)
    cold = time.monotonic() - start
    assert_no_errors(page)
    alerts = page.locator('[data-testid="stAlert"]').all_inner_texts()
    assert any("broken.png: the image data is truncated" in a for a in alerts), alerts
    assert page.get_by_text("Best guess:").count() == 1
    snap(page, shots / "predict_upload.png")

    # warm: the models are loaded; a new image costs only its prediction (uploads add to the list)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files([str(second)])
    start = time.monotonic()
    page.get_by_text("Best guess:").nth(1).wait_for(timeout=180_000)
    wait_until_idle(page, settle_s=0.5)
    warm = time.monotonic() - start
    assert page.get_by_text("Hypernym chain of").count() == 2
    snap(page, shots / "predict_upload_warm.png")
    print(f"\nupload → chain: cold {cold:.1f} s (loads the checkpoint), warm {warm:.1f} s")


def test_gallery_image_prediction(page, app_url, shots):
    open_page(page, app_url, "predict", "Predict")
    page.get_by_role("tab", name="Pick from the dataset").click()
    page.get_by_text("Hypernym chain of").first.wait_for(timeout=300_000)
    wait_until_idle(page)
    assert_no_errors(page)
    assert page.get_by_text("Dataset label:").count() == 1
    snap(page, shots / "predict_gallery.png")


def test_training_job_from_the_form_finishes(page, app_url, shots):
    open_page(page, app_url, "train", "Train")
    page.get_by_text("Subset, device").click()
    for label, value in (("Max concepts (0 = all)", "6"), ("Images per concept (0 = all)", "3"),
                         ("Epochs", "1")):
        field = page.get_by_role("spinbutton", name=label)
        field.fill(value)
        field.press("Tab")
    page.get_by_role("button", name="Queue training").click()
    page.get_by_text(re.compile(r"Queued 1 training job")).wait_for()
    snap(page, shots / "train_queued.png")
    page.get_by_text(re.compile(r"#\d+ .*succeeded")).wait_for(timeout=900_000)
    assert_no_errors(page)
    snap(page, shots / "train_finished.png")


def test_geometry_computes_coherence_and_maps(page, app_url, shots):
    open_page(page, app_url, "geometry", "Geometry")
    page.get_by_text("PCA", exact=True).click()          # UMAP's first run compiles numba for minutes
    wait_until_idle(page)
    page.get_by_role("button", name="Compute features and coherence").click()
    page.get_by_text("Coherence job #").wait_for()
    page.get_by_text("Visual coherence per category").wait_for(timeout=600_000)
    wait_until_idle(page)
    assert_no_errors(page)
    assert page.locator('[data-testid="stPlotlyChart"]').count() >= 7   # 3 + 3 maps, coherence bars
    snap(page, shots / "geometry.png")


def test_browse_and_results_show_the_evaluated_run(page, app_url, shots):
    open_page(page, app_url, "browse", "Browse")
    assert page.get_by_text("Unseen hypernym macro-F1").count() >= 1
    page.get_by_role("button", name="Questions", exact=True).first.click()
    page.get_by_role("dialog").wait_for()
    snap(page, shots / "browse_questions.png")
    page.keyboard.press("Escape")
    open_page(page, app_url, "results", "Results")
    assert_no_errors(page)
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
    snap(page, shots / "results.png")


def test_a_collection_imported_from_the_data_page_is_offered_for_training(page, app_url, shots, tmp_path):
    """The Data page's form queues an import job, the worker runs it, and Train offers the dataset.
    Last in this file: the app's datasets then number two, which the tests above do not expect."""
    root = tmp_path / "photos"
    for i, concept in enumerate(("owl", "trout", "oak")):
        (root / concept).mkdir(parents=True)
        for j in range(3):
            Image.new("RGB", (48, 48), (70 * i + 20 * j, 120, 220 - 60 * i)).save(root / concept / f"{j}.png")
    table = tmp_path / "kinds.csv"
    table.write_text("concept,categories,synset\nowl,animal;bird,owl.n.01\ntrout,animal;fish,\noak,plant,\n")

    open_page(page, app_url, "data", "Data")
    page.get_by_role("textbox", name="Image folder").fill(str(root / "nowhere"))
    page.get_by_role("textbox", name="Concept table (CSV)").fill(str(table))
    page.get_by_role("textbox", name="Dataset name").fill("concepts")
    page.get_by_role("button", name="Import").click()
    page.get_by_text(re.compile(r"Not queued: .* 2 problem\(s\)")).wait_for()     # both, at once
    snap(page, shots / "data_refused.png")
    page.get_by_role("textbox", name="Image folder").fill(str(root))
    page.get_by_role("textbox", name="Concept table (CSV)").fill(str(table))
    page.get_by_role("textbox", name="Dataset name").fill("my_photos")
    page.get_by_role("button", name="Import").click()
    page.get_by_text(re.compile(r"Queued import job #\d+")).wait_for()
    page.get_by_text("Imported my_photos").wait_for(timeout=300_000)     # the page reruns when it is done
    wait_until_idle(page)
    assert_no_errors(page)
    assert page.get_by_text("All 3 concepts").count() == 1                  # and shows the new dataset
    snap(page, shots / "data_imported.png")

    open_page(page, app_url, "train", "Train")
    page.get_by_label("Dataset").first.click()               # shown once there are two datasets
    page.get_by_role("option", name="my_photos").wait_for()
    snap(page, shots / "train_offers_the_import.png")
