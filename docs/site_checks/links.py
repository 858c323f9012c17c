"""Internal link check of a built HTML site: every relative link resolves, offline.

Every ``href`` and ``src`` of every page that is not an absolute URL must name a file of the
site, and its ``#fragment`` an ``id`` (or ``<a name>``) on that page. External URLs are not
followed (the build machines have no network), but a page must not load a script or a style
sheet from one: the site is read offline, MathJax included.
"""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

LINK_ATTRIBUTES = {"a": "href", "link": "href", "img": "src", "script": "src", "iframe": "src", "source": "src"}
#: elements whose remote URL would make a page depend on the network when it is read
LOADED_AT_READ_TIME = {"script", "img", "iframe", "source"}


@dataclass(frozen=True)
class Link:
    page: Path
    tag: str
    url: str


class _PageParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.anchors: set[str] = set()
        self.links: list[tuple[str, str]] = []  # (tag, url)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for key in ("id", "name") if tag == "a" else ("id",):
            if attributes.get(key):
                self.anchors.add(attributes[key])
        url = attributes.get(LINK_ATTRIBUTES.get(tag, ""))
        if url is not None:
            self.links.append((tag, url))


def _parse(page: Path) -> _PageParser:
    parser = _PageParser()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def _is_remote(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.scheme and parts.scheme != "file") or url.startswith("//")


def _is_remote_stylesheet(tag: str, url: str) -> bool:
    return tag == "link" and _is_remote(url) and url.split("?")[0].endswith(".css")


def broken_links(site: Path) -> list[str]:
    """One line per broken internal link, or per page resource loaded from the network."""
    pages = {page.resolve(): _parse(page) for page in sorted(site.rglob("*.html"))}
    problems = []
    for page, parsed in pages.items():
        where = page.relative_to(site.resolve())
        for tag, url in parsed.links:
            if _is_remote(url):
                if tag in LOADED_AT_READ_TIME or _is_remote_stylesheet(tag, url):
                    problems.append(f"{where}: <{tag}> loads {url} from the network")
                continue
            parts = urlsplit(url)
            if parts.scheme in ("mailto", "javascript", "data"):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                problems.append(f"{where}: <{tag}> {url}: no file {target}")
                continue
            fragment = unquote(parts.fragment)
            if fragment and target.suffix == ".html":
                anchors = pages[target].anchors if target in pages else _parse(target).anchors
                if fragment not in anchors:
                    problems.append(f"{where}: <{tag}> {url}: no #{fragment} in {target.name}")
    return problems
