"""Open built pages in headless Chromium and check that their math and figures rendered.

Each page is copied next to itself (so that its relative links still resolve) with a probe
script appended; Chromium runs the page's JavaScript for up to ``VIRTUAL_TIME_MS`` of virtual
time and prints the DOM, in which the probe has left its report: whether MathJax loaded, how
many math elements the page has and how many of them hold a rendered ``mjx-container`` (and
no ``mjx-merror``), and which images failed to load (``naturalWidth == 0``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bs4 import BeautifulSoup

VIRTUAL_TIME_MS = 10_000
#: wall-clock limit of one page; generous, as the virtual time does not bound a loaded machine's real time
CHROMIUM_TIMEOUT_S = 600
CHROMIUM_NAMES = ("chromium", "chromium-browser")
PROBE = """
<script>
window.addEventListener("load", async () => {
  const images = [...document.images];
  await Promise.all(images.map(image => image.complete ? null : new Promise(done => {
    image.addEventListener("load", done); image.addEventListener("error", done); })));
  const report = {mathjax: typeof MathJax !== "undefined" && MathJax.startup !== undefined};
  if (report.mathjax) { await MathJax.startup.promise; }
  const math = [...document.querySelectorAll(".math")];
  report.math = math.length;
  report.unrendered = math.filter(element => !element.querySelector("mjx-container")).length;
  report.tex_errors = document.querySelectorAll("mjx-merror").length;
  report.images = images.length;
  report.broken_images = images.filter(image => image.naturalWidth === 0).map(image => image.getAttribute("src"));
  document.body.setAttribute("data-site-check", JSON.stringify(report));
});
</script>
"""


class ChromiumMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class PageReport:
    """What the probe saw on one page (``None`` when it left no report)."""

    mathjax: bool
    math: int
    unrendered: int
    tex_errors: int
    images: int
    broken_images: list[str]


def find_chromium() -> str:
    """Debian's ``chromium`` (or ``$CHROMIUM``); raises with the fix when there is none."""
    for name in (os.environ.get("CHROMIUM"), *CHROMIUM_NAMES):
        if name and shutil.which(name):
            return shutil.which(name)
    raise ChromiumMissing("headless Chromium is needed to check the rendered pages and none was found; "
                          "install Debian's package (as root: apt-get install -y chromium) or set CHROMIUM "
                          "to a Chromium binary")


def _dump_dom(chromium: str, page: Path) -> str:
    with tempfile.TemporaryDirectory(prefix="geounet-docs-chromium-") as profile:
        result = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--allow-file-access-from-files",
             f"--user-data-dir={profile}", f"--virtual-time-budget={VIRTUAL_TIME_MS}", "--window-size=1280,2000",
             "--dump-dom", page.resolve().as_uri()],
            capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"chromium failed on {page} (status {result.returncode}): {result.stderr[-2000:]}")
    return result.stdout


def render(chromium: str, page: Path) -> PageReport | None:
    """Open ``page`` with the probe appended and return the probe's report."""
    probed = page.with_name(page.stem + ".site-check.html")
    html = page.read_text(encoding="utf-8")
    probed.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    try:
        dom = _dump_dom(chromium, probed)
    finally:
        probed.unlink()
    body = BeautifulSoup(dom, "html.parser").body
    report = body.get("data-site-check") if body is not None else None
    return PageReport(**json.loads(report)) if report else None


def problems(report: PageReport | None, *, needs_math: bool, needs_images: bool) -> list[str]:
    """What is wrong with one page's report (nothing when it rendered as required)."""
    if report is None:
        return ["the probe left no report (the page's scripts did not finish)"]
    found = []
    if (needs_math or report.math) and not report.mathjax:
        found.append("MathJax did not load")
    if needs_math and report.math == 0:
        found.append("no math on the page")
    if report.unrendered:
        found.append(f"{report.unrendered} of {report.math} math elements not rendered by MathJax")
    if report.tex_errors:
        found.append(f"{report.tex_errors} TeX errors")
    if needs_images and report.images == 0:
        found.append("no images on the page")
    if report.broken_images:
        found.append(f"images that did not load: {', '.join(report.broken_images)}")
    return found
