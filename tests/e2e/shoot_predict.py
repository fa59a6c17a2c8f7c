"""Predict on held-out images of the real data dir, in the browser, to look at (not a test: run it by hand).

    python tests/e2e/shoot_predict.py [--images 5] [--out artifacts/predict]

Picks N test-split images of the default checkpoint's own split (one per category, in name order,
so none was trained on), starts the app the way `make app` does, selects the shipped checkpoint's run
on Predict (the page offers the default-config run best on validation first, which may be another
seed with another split), uploads the images in headless Chromium (Playwright) and saves one full-page
screenshot, plus predictions.txt: each image's true concept and the page's best guess, and the
upload -> last chain time.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "e2e")]


def held_out_images(n: int) -> list:
    """n test-split images of the default checkpoint's split, from n different first categories."""
    from core import paths, rundata, runs
    from core.config import TrainConfig

    cfg = TrainConfig.from_stored(runs.read_json(paths.SHIPPED_CHECKPOINT / runs.CONFIG_JSON))
    data = rundata.prepare(cfg)
    chosen, seen = [], set()
    for im in sorted(data.images("test"), key=lambda im: im.id):
        first = (data.dataset.concepts[im.concept].categories or ["-"])[0]
        if first not in seen:
            chosen.append(im)
            seen.add(first)
        if len(chosen) == n:
            break
    return chosen


def shipped_run_id() -> str:
    from core import paths, runs

    return runs.read_json(paths.SHIPPED_CHECKPOINT / "checkpoint" / "checkpoint.json")["run_id"]


def choose_checkpoint(page, run_id: str) -> None:
    """Pick the run in Predict's checkpoint selectbox, unless it is already the one shown."""
    from test_app_browser import wait_until_idle

    box = page.get_by_test_id("stSelectbox").first

    def shown() -> bool:          # the chosen option is the combobox input's value, not its text
        return box.locator("input").first.input_value().startswith(f"{run_id} ")

    if shown():
        return
    box.click()
    page.keyboard.type(run_id)          # the list is virtualised: filter it rather than scroll it
    page.get_by_role("option").filter(has_text=run_id).first.click()
    wait_until_idle(page)
    if not shown():
        raise RuntimeError(f"could not select checkpoint {run_id} on Predict")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "artifacts" / "predict"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(os.environ.get("TAXOLENS_DATA", ROOT / "data"))
    images = held_out_images(args.images)
    upload = Path(tempfile.mkdtemp(prefix="taxolens-predict-"))
    files = []
    for im in images:      # named by concept, so the page's captions say what each image is
        files.append(upload / f"{im.concept}{im.path.suffix}")
        shutil.copyfile(im.path, files[-1])
    from playwright.sync_api import sync_playwright

    from app_server import running_app
    from test_app_browser import open_page, snap, wait_until_idle
    with running_app(data, out / "app.log", timeout_s=180) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        open_page(page, url, "predict", "Predict")
        choose_checkpoint(page, shipped_run_id())
        start = time.monotonic()
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files([str(f) for f in files])
        page.get_by_text("Best guess:").nth(len(files) - 1).wait_for(timeout=900_000)
        wait_until_idle(page)
        seconds = time.monotonic() - start
        guesses = page.locator("[data-testid=\"stMarkdownContainer\"]", has_text="Best guess:").all_inner_texts()
        snap(page, out / f"predict_{len(files)}.png")
        browser.close()
    lines = [f"checkpoint {shipped_run_id()}"]
    lines += [f"{im.concept} ({im.id}): {g.replace(chr(10), ' ')}" for im, g in zip(images, guesses)]
    lines.append(f"{len(files)} uploads -> last chain: {seconds:.1f} s")
    (out / "predictions.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
