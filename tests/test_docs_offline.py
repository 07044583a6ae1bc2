"""tools/check_docs_offline.py, the CI check that the built docs need no network, on small pages."""
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location(
    "check_docs_offline", os.path.join(ROOT, "tools", "check_docs_offline.py"))
checker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checker)


def _site(tmp_path, page: str, css: str = "body {}"):
    (tmp_path / "_static" / "mathjax").mkdir(parents=True)
    (tmp_path / "_static" / "mathjax" / "tex-chtml.js").write_text("// local MathJax")
    (tmp_path / "_static" / "site.css").write_text(css)
    (tmp_path / "index.html").write_text(page)
    return str(tmp_path)


def test_local_site_passes(tmp_path):
    page = ('<html><head><link rel="stylesheet" href="_static/site.css">'
            '<link rel="canonical" href="https://example.org/minires/">'
            '<script defer src="_static/mathjax/tex-chtml.js"></script></head>'
            '<body><a href="https://arxiv.org/abs/1512.03385">the paper</a>'
            r'<span class="math">\(x\)</span></body></html>')
    assert checker.check(_site(tmp_path, page)) == []
    assert checker.main([str(tmp_path)]) == 0


def test_cdn_mathjax_fails(tmp_path):
    page = ('<html><head><script defer src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/'
            'tex-chtml.js"></script></head><body></body></html>')
    problems = checker.check(_site(tmp_path, page))
    assert len(problems) == 1 and "cdn.jsdelivr.net" in problems[0] and "index.html" in problems[0]
    assert checker.main([str(tmp_path)]) == 1


def test_remote_stylesheets_images_and_css_imports_fail(tmp_path):
    page = ('<html><head><link rel="stylesheet" href="//fonts.example.com/a.css">'
            '<style>@import "https://fonts.example.com/b.css";</style></head>'
            '<body><img src="http://example.com/x.png"></body></html>')
    problems = checker.check(_site(tmp_path, page, css="a { background: url(https://x.org/y.png) }"))
    assert len(problems) == 4, problems


def test_missing_local_mathjax_fails(tmp_path):
    page = '<html><head><script src="_static/mathjax/gone.js"></script></head></html>'
    problems = checker.check(_site(tmp_path, page))
    assert problems and "not in the build" in problems[0]


def test_no_site_fails(tmp_path):
    assert checker.check(str(tmp_path / "missing"))
