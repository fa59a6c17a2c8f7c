"""Screenshots of the Results page's paper figures, to look at (not a test: run it by hand).

    python tests/e2e/shoot_paper_figures.py [--real] [--out artifacts/paper_figures]

Without --real: a throwaway data dir (tests/app's dataset subset) with a fake grid of runs
(tests/app/paper_data.py: several conditions, both LM inits, three seeds), a coherence table and
an LM probe. With --real: the developer's data dir as it is (read only). Starts the app the way
`make app` does, opens Results in headless Chromium (Playwright) and saves one PNG per figure plus
the whole section, and the SVG/PNG a click on each download button gives.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "app"), str(ROOT / "tests" / "e2e")]

FIGURES = ("ablation", "coherence", "probe", "depth", "leaf")


def fake_data() -> Path:
    from app_data import build_data_dir

    root = build_data_dir(Path(tempfile.mkdtemp(prefix="taxolens-shots-")) / "data")
    os.environ["TAXOLENS_DATA"] = str(root)
    from paper_data import fake_coherence, fake_grid
    from test_results import fake_probe

    from core import datasets
    fake_grid()
    ds = datasets.load_dataset("concepts")
    fake_coherence(ds)
    fake_probe("smollm2-135m", "concepts", {k: 0.3 + 0.08 * i for i, k in enumerate(sorted(ds.categories))})
    return root


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--real", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "artifacts" / "paper_figures"))
    ap.add_argument("--downloads", action="store_true", help="also click each SVG/PNG download")
    args = ap.parse_args()
    out = Path(args.out) / ("real" if args.real else "fake")
    out.mkdir(parents=True, exist_ok=True)
    data = Path(os.environ.get("TAXOLENS_DATA", ROOT / "data")) if args.real else fake_data()
    from playwright.sync_api import sync_playwright

    from app_server import running_app
    with running_app(data, out / "app.log", timeout_s=90) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page.goto(f"{url}/results")
        page.get_by_role("heading", name="The paper's figures").wait_for(timeout=180_000)
        page.locator(".st-key-pf_csv_leaf").wait_for(timeout=180_000)
        quiet = None
        while quiet is None or time.monotonic() - quiet < 2:
            busy = page.locator('[data-testid="stStatusWidget"]').count()
            quiet = None if busy else (quiet or time.monotonic())
            time.sleep(0.2)
        keys = page.evaluate("() => [...document.querySelectorAll('[class*=st-key-pf]')].map(e => e.className)")
        print("keyed elements:", keys)
        for name in FIGURES:
            box = page.locator(f".st-key-pf_fig_{name}")
            if box.count():
                box.scroll_into_view_if_needed()
                time.sleep(1.5)
                box.screenshot(path=str(out / f"{name}.png"))
                print("shot", name)
            else:
                print("no figure", name)
            if args.downloads:
                for fmt in ("svg", "png"):
                    button = page.locator(f".st-key-pf_{fmt}_{name} button").first
                    if button.count() and button.is_enabled():
                        with page.expect_download(timeout=120_000) as d:
                            button.click()
                        d.value.save_as(str(out / f"download_{name}.{fmt}"))
                        print("downloaded", name, fmt)
        heading = page.get_by_role("heading", name="The paper's figures")
        heading.scroll_into_view_if_needed()
        height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
        page.set_viewport_size({"width": 1400, "height": min(int(height) + 40, 16000)})
        time.sleep(3)
        page.screenshot(path=str(out / "page.png"), full_page=True)
        browser.close()
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
