"""Check a built documentation site: links, API coverage, rendered math and figures.

    python docs/check_site.py [docs/_build/html] [--tutorials-executed | --tutorials-not-executed]

1. internal links: every relative ``href`` / ``src`` and ``#anchor`` resolves, and no page
   loads a script, image or style sheet from the network (site_checks/links.py);
2. API coverage: every name of every ``__all__`` in geounet is in the inventory and its entry
   shows a docstring (site_checks/api_names.py);
3. rendering, in headless Chromium (site_checks/rendering.py): the root page, the U-Net's API
   page and every concept page render their math with MathJax (at least one concept page has
   math); every tutorial page loads its images, and has at least one when the tutorials were
   executed (sphinx-gallery's ``plot_gallery``; ``make docs`` passes GEOUNET_DOCS_TUTORIALS).

Exits with status 1 and one line per problem when a check fails.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from site_checks import api_names, links, rendering  # noqa: E402

DOCS = Path(__file__).resolve().parent
#: pages that must show rendered math: the root page and an API page whose docstring has math
MATH_PAGES = ("index.html", "api/generated/geounet.nn.unet.html")


def _rendering_problems(site: Path, tutorials_executed: bool) -> list[str]:
    chromium = rendering.find_chromium()
    concepts = sorted((site / "concepts").glob("*.html"))
    tutorials = sorted((site / "auto_tutorials").glob("plot_*.html"))
    found = [] if concepts else ["no concept pages under concepts/"]
    found += [] if tutorials else ["no tutorial pages under auto_tutorials/"]
    pages = ([(site / page, True, False) for page in MATH_PAGES] + [(page, False, False) for page in concepts]
             + [(page, False, tutorials_executed) for page in tutorials])
    concept_math = 0
    for page, needs_math, needs_images in pages:
        if not page.is_file():
            found.append(f"{page.relative_to(site)}: no such page")
            continue
        report = rendering.render(chromium, page)
        found += [f"{page.relative_to(site)}: {problem}" for problem in
                  rendering.problems(report, needs_math=needs_math, needs_images=needs_images)]
        concept_math += report.math if report is not None and page in concepts else 0
        print(f"  rendered {page.relative_to(site)}: {report}")
    if concepts and concept_math == 0:
        found.append("no concept page has math")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", nargs="?", type=Path, default=DOCS / "_build" / "html", help="the built HTML folder")
    executed = parser.add_mutually_exclusive_group()
    executed.add_argument("--tutorials-executed", dest="tutorials_executed", action="store_true", default=None)
    executed.add_argument("--tutorials-not-executed", dest="tutorials_executed", action="store_false")
    args = parser.parse_args(argv)
    tutorials_executed = (os.environ.get("GEOUNET_DOCS_TUTORIALS", "1") != "0" if args.tutorials_executed is None
                          else args.tutorials_executed)
    if not (args.site / "objects.inv").is_file():
        print(f"check_site: {args.site} holds no built site (no objects.inv); build it first (make docs)",
              file=sys.stderr)
        return 1
    failed = False
    for title, check in (("internal links", lambda: links.broken_links(args.site)),
                         ("API coverage of __all__", lambda: api_names.missing_names(args.site)),
                         ("math and figures in Chromium", lambda: _rendering_problems(args.site, tutorials_executed))):
        print(f"check_site: {title}")
        try:
            problems = check()
        except rendering.ChromiumMissing as error:
            problems = [str(error)]
        for problem in problems:
            print(f"  FAIL {problem}")
        print(f"  {'FAILED' if problems else 'ok'} ({len(problems)} problems)")
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
