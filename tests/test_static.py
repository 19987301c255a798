"""index.html asks for every module of the first path at once (issue 13 item 2).

Without a ``<link rel="modulepreload">`` a module is only requested once the
module importing it has arrived and been parsed: one more round trip per level
of the import graph (main.js → mesh.js → peer.js → safety.js → sha256.js) before
the page can run. These tests read the graph from the sources, so a module added
or moved without its preload fails here rather than in the benchmark.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from server.static import SECURITY_HEADERS, client_web_dir, load_static

CLIENT = client_web_dir()
#: Static imports (``import x from './y.js'``, ``import './y.js'``, ``export … from``);
#: dynamic ``import('./y.js')`` is left out: those modules load after the first path.
STATIC_IMPORT = re.compile(
    r"^\s*(?:import|export)\s[^;()]*?\bfrom\s*['\"](\./[^'\"]+)['\"]|^\s*import\s*['\"](\./[^'\"]+)['\"]",
    re.MULTILINE,
)


class _Head(HTMLParser):
    """Module scripts and modulepreload links of a page, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.preloads: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script" and a.get("type") == "module" and a.get("src"):
            self.scripts.append(str(a["src"]))
        if tag == "link" and a.get("rel") == "modulepreload" and a.get("href"):
            self.preloads.append(str(a["href"]))


def head() -> _Head:
    parser = _Head()
    parser.feed((CLIENT / "index.html").read_text(encoding="utf-8"))
    return parser


def static_imports(module: str) -> set[str]:
    source = (CLIENT / module).read_text(encoding="utf-8")
    return {(a or b).removeprefix("./") for a, b in STATIC_IMPORT.findall(source)}


def first_path_modules(entries: list[str]) -> set[str]:
    """Every module the entry scripts import, directly or not."""
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo.extend(static_imports(module))
    return seen


def test_import_pattern_reads_the_forms_the_client_uses() -> None:
    source = (
        "import { a, b } from './x.js';\nimport * as y from \"./y.js\";\nimport './z.js';\n"
        "export { c } from './w.js';\nconst later = () => import('./lazy.js');\n"
        "import {\n  d,\n  e,\n} from './v.js';\n"
    )
    found = {(a or b) for a, b in STATIC_IMPORT.findall(source)}
    assert found == {"./x.js", "./y.js", "./z.js", "./w.js", "./v.js"}


def test_every_module_of_the_first_path_is_preloaded() -> None:
    page = head()
    assert page.scripts, "index.html has no module script"
    needed = first_path_modules(page.scripts)
    asked_at_once = set(page.scripts) | set(page.preloads)
    missing = sorted(needed - asked_at_once)
    assert not missing, f"add <link rel=modulepreload> to index.html for: {missing}"
    # Each file once: a duplicate preload is a wasted line, a script preloaded again too.
    assert len(page.preloads) == len(set(page.preloads))
    assert not set(page.preloads) & set(page.scripts)


def test_every_preload_is_a_module_the_server_serves() -> None:
    served = load_static()
    page = head()
    needed = first_path_modules(page.scripts)
    for href in page.preloads:
        assert f"/{href}" in served, f"{href} is preloaded but not served"
        # A preload of a module the page does not import fetches bytes for nothing
        # on the first path (a lazily imported one belongs after it).
        assert href in needed, f"{href} is preloaded but not on the first path"


def test_csp_stays_strict() -> None:
    csp = SECURITY_HEADERS["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "default-src 'self'" in csp
