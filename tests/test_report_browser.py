"""The HTML reports in a real browser: headless Chromium driven by Playwright.

Each page is opened at 1400 px and at 420 px wide and must: not overflow sideways (at
1400 px nothing may, at 420 px the page itself may not; wide tables scroll inside their
box), show every image, make no request outside its own folder, raise no script error and
show no text smaller than 10 px. Skips where Playwright or a Chromium is not installed
(`.ci/run` installs Debian's `chromium`; Playwright drives it, nothing is downloaded).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.report import (
    distribution_figure,
    example_panel_figure,
    summarize_methods,
    write_report_html,
)
from pipeline.report.apply_page import write_apply_report

BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDE, NARROW = 1400, 420
MIN_TEXT_PX = 10.0

#: Text nodes shown on the page whose computed font size is below the limit.
SMALL_TEXT_JS = """(limit) => {
  const small = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const text = node.textContent.trim();
    const el = node.parentElement;
    if (!text || !el) continue;
    const style = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    if (style.display === 'none' || style.visibility === 'hidden' || box.width === 0) continue;
    const size = parseFloat(style.fontSize);
    if (size < limit) small.push(`${size}px: ${text.slice(0, 40)}`);
  }
  return small;
}"""

#: Elements inside the page that are wider than the box that holds them (wide mode).
OVERFLOW_JS = """() => {
  const out = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > doc.clientWidth) out.push(`page ${doc.scrollWidth} > ${doc.clientWidth}`);
  for (const el of document.querySelectorAll('body *')) {
    const style = getComputedStyle(el);
    if (['auto', 'scroll'].includes(style.overflowX) && el.scrollWidth > el.clientWidth + 1)
      out.push(`${el.tagName}.${el.className} ${el.scrollWidth} > ${el.clientWidth}`);
  }
  return out;
}"""

BROKEN_IMAGES_JS = """() => [...document.images]
  .filter(img => !img.complete || img.naturalWidth === 0)
  .map(img => img.getAttribute('src').slice(0, 60))"""


def _chromium() -> str:
    pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed (pip install playwright)"
    )
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium on this machine (Debian: apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        yield browser
        browser.close()


def _check_at(browser, page_file: Path, width: int) -> None:
    """Open the page at one width and assert the rules of the module docstring."""
    folder = page_file.parent.resolve().as_uri() + "/"
    page = browser.new_page(viewport={"width": width, "height": 900})
    outside: list[str] = []
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    def route(r, request) -> None:
        if request.url.startswith(("data:", folder)):
            r.continue_()
        else:
            outside.append(request.url)
            r.abort()

    page.route("**/*", route)
    try:
        page.goto(page_file.resolve().as_uri(), wait_until="load")
        overflow = page.evaluate(OVERFLOW_JS)
        if width == NARROW:
            overflow = [o for o in overflow if o.startswith("page ")]
        assert overflow == [], f"{page_file.name} at {width} px overflows: {overflow}"
        assert page.evaluate(BROKEN_IMAGES_JS) == [], f"{page_file.name}: images not loaded"
        small = page.evaluate(SMALL_TEXT_JS, MIN_TEXT_PX)
        assert small == [], f"{page_file.name} at {width} px: text under {MIN_TEXT_PX} px: {small}"
        assert outside == [], f"{page_file.name} requested {outside}"
        assert errors == [], f"{page_file.name}: script errors {errors}"
    finally:
        page.close()


def check_page(browser, page_file: Path) -> None:
    for width in (WIDE, NARROW):
        _check_at(browser, page_file, width)


def _scan(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A smooth synthetic 'scan' with a textured patch, float32 in [0, 1]."""
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]] / max(shape)
    img = 0.3 + 0.4 * np.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2) / 0.08)
    img[shape[0] // 4 : shape[0] // 2, shape[1] // 4 : shape[1] // 2] += (
        0.1 * np.sin(x * 90)[: shape[0] // 4, : shape[1] // 4]
    )
    return np.clip(img, 0, 1).astype(np.float32)


def test_run_report_in_chromium(browser, tmp_path, rng) -> None:
    long_name = "1.2.826.0.1.3680043.8.498.10368940475310924637281623.dcm"
    examples, rows = [], []
    for i, shape in enumerate([(160, 128), (28, 28)]):
        clean = _scan(rng, shape)
        noisy = np.clip(clean + rng.normal(0, 0.1, shape), 0, 1).astype(np.float32)
        outputs = {"tv": (clean + noisy) / 2, "unet:cxr_shipped_refine": clean}
        examples.append(
            {
                "image": long_name if i == 0 else f"img{i}",
                "clean": clean,
                "noisy": noisy,
                "outputs": outputs,
            }
        )
    for i in range(6):
        for method, kind, base in [
            ("noisy", "input", 20.0),
            ("tv", "baseline", 25.0),
            ("unet:cxr_shipped_refine", "model", 30.0),
        ]:
            rows.append(
                {
                    "image": f"{long_name}#{i}",
                    "method": method,
                    "kind": kind,
                    "psnr": base + rng.normal(),
                    "ssim": 0.5 + 0.05 * rng.random(),
                    "seconds": 0.01,
                }
            )
    figures = {
        "Examples": example_panel_figure(examples, tmp_path / "figures" / "examples.png"),
        "Distributions": distribution_figure(rows, tmp_path / "figures" / "distributions.png"),
    }
    facts = {
        "date": "2026-11-29 20:00 UTC",
        "commit": "0123456789ab",
        "run folder": str(tmp_path / "runs" / long_name),
    }
    page = write_report_html(
        tmp_path / "report.html", "Run test", summarize_methods(rows), figures, [long_name], facts
    )
    check_page(browser, page)


def test_apply_report_in_chromium(browser, tmp_path) -> None:
    from test_apply_report import make_apply_folder

    inputs, outputs, rows = make_apply_folder(tmp_path)
    page_file = write_apply_report(rows, outputs, inputs)["html"]
    check_page(browser, page_file)

    page = browser.new_page(viewport={"width": WIDE, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(page_file.resolve().as_uri(), wait_until="load")
    scan = page.locator("section.scan").first
    scan.locator("input[type=range]").fill("20")
    assert "20%" in scan.locator("img.top").evaluate("img => img.style.clipPath")
    scan.locator("button[data-mode=removed]").click()
    base = scan.locator("img.base")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=base.element_handle())
    assert base.get_attribute("src").endswith("_removed.png")
    assert scan.locator("img.top").evaluate("img => getComputedStyle(img).visibility") == "hidden"
    scan.locator("button.zoom").click()  # native size: the picture is as wide as the scan
    width = base.evaluate("img => img.getBoundingClientRect().width")
    assert width == base.evaluate("img => img.naturalWidth")
    page.locator("th", has_text="noise before").click()
    cells = page.locator("table.sortable tbody tr td:nth-child(4)").all_inner_texts()
    assert cells == sorted(cells, key=float) and len(cells) == len(rows)
    assert errors == []
    page.close()


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ('<p style="font-size:8px">tiny print</p>', "text under"),
        ('<img src="https://example.invalid/x.png" alt="x">', "images not loaded"),
        ('<div style="width:2000px">wide</div>', "overflows"),
        ("<script>undefinedFunction()</script>", "script errors"),
        ('<script>fetch("http://127.0.0.1:9/x").catch(() => {})</script>', "requested"),
    ],
)
def test_the_checks_catch_a_bad_page(browser, tmp_path, body, complaint) -> None:
    from pipeline.report import html_page

    page = tmp_path / "bad.html"
    page.write_text(html_page("bad", body))
    with pytest.raises(AssertionError, match=complaint):
        check_page(browser, page)
