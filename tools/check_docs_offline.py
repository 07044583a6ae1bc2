"""Check that the built docs need no network: no page loads a script, a stylesheet, a font or an
image from a remote address, and MathJax is shipped with the pages that use it.

    python tools/check_docs_offline.py [docs/_build/html]

Exit status 0 when every page is self-contained, 1 (with one line per problem) otherwise. CI runs
it after the docs build (`.ci/run`).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from html.parser import HTMLParser

REMOTE = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)
# the attributes through which a page loads something by itself (a plain <a href> does not)
LOADING = {"script": ("src",), "link": ("href",), "img": ("src", "srcset"),
           "iframe": ("src",), "source": ("src", "srcset"), "audio": ("src",),
           "video": ("src", "poster"), "embed": ("src",), "object": ("data",)}
CSS_URL = re.compile(r"(?:url\(\s*['\"]?|@import\s+['\"])((?:https?:)?//[^'\")\s]+)", re.IGNORECASE)


class _Loads(HTMLParser):
    """Collects (tag, address) of everything a page loads, and inline <style> text."""

    def __init__(self):
        super().__init__()
        self.loads, self.styles, self._in_style = [], [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "link" and not ({"stylesheet", "preload", "modulepreload", "icon"}
                                  & set((attrs.get("rel") or "").lower().split())):
            return                      # rel="canonical", "next", "prev": links, not loads
        for name in LOADING.get(tag, ()):
            if attrs.get(name):
                self.loads.append((tag, attrs[name]))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def page_problems(path: str, root: str) -> list[str]:
    """What in one HTML page would need the network (or is missing for offline math)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    parser = _Loads()
    parser.feed(text)
    rel = os.path.relpath(path, root)
    problems = [f"{rel}: <{tag}> loads {addr} from the network"
                for tag, addr in parser.loads if REMOTE.match(addr)]
    problems += [f"{rel}: inline style loads {url} from the network"
                 for style in parser.styles for url in CSS_URL.findall(style)]
    if "mathjax" in text.lower():
        scripts = [addr for tag, addr in parser.loads if tag == "script" and "mathjax" in addr.lower()]
        for addr in scripts:
            local = os.path.normpath(os.path.join(os.path.dirname(path), addr.split("?")[0]))
            if not REMOTE.match(addr) and not os.path.exists(local):
                problems.append(f"{rel}: MathJax script {addr} is not in the build")
    return problems


def stylesheet_problems(path: str, root: str) -> list[str]:
    with open(path, encoding="utf-8", errors="replace") as f:
        return [f"{os.path.relpath(path, root)}: loads {url} from the network"
                for url in CSS_URL.findall(f.read())]


def check(root: str) -> list[str]:
    """Every problem found under the built site ``root``."""
    if not os.path.isdir(root):
        return [f"{root} is not a built site: run sphinx-build first"]
    problems, pages = [], 0
    for folder, _, files in os.walk(root):
        for name in sorted(files):
            path = os.path.join(folder, name)
            if name.endswith(".html"):
                pages += 1
                problems += page_problems(path, root)
            elif name.endswith(".css") and "mathjax" not in folder:
                problems += stylesheet_problems(path, root)
    if not pages:
        problems.append(f"{root} holds no HTML page")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=os.path.join("docs", "_build", "html"))
    args = parser.parse_args(argv)
    problems = check(args.root)
    for p in problems:
        print(f"check_docs_offline: {p}")
    if not problems:
        print(f"check_docs_offline: every page under {args.root} loads only local files")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
