"""The documentation site builds with warnings as errors, and the built pages hold what a reader needs.

One build per test session (``python -m sphinx -W -n -b html docs <tmp>``, a few seconds):
every public name has an entry, math is rendered markup, the tutorials show their plots, the
version shown is ``gridgnn.__version__``, and no page sends the reader outside the repository.
"""
import importlib
import inspect
import pathlib
import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest

import gridgnn

pytest.importorskip("sphinx")
pytest.importorskip("myst_nb")
from sphinx.util.inventory import InventoryFile  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
PUBLIC_MODULES = ["gridgnn", "gridgnn.nn", "gridgnn.nn.functional", "gridgnn.nn.twins", "gridgnn.sparse",
                  "gridgnn.geometry", "gridgnn.convert", "gridgnn.verification", "gridgnn.flow", "gridgnn.analysis",
                  "gridgnn.testing", "gridgnn.training", "gridgnn.models", "gridgnn.errors", "gridgnn.pyg"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("docs") / "html"
    result = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-n", "-q", "-b", "html", str(ROOT / "docs"),
                             str(out)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, f"sphinx failed:\n{result.stdout}\n{result.stderr}"
    return out


class _Tags(HTMLParser):
    """Counts of tags and classes in one page, and its text."""

    def __init__(self):
        super().__init__()
        self.tags, self.classes, self.text = {}, set(), []

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.classes.update(dict(attrs).get("class", "").split())

    def handle_data(self, data):
        self.text.append(data)


def _page(site, name):
    parser = _Tags()
    parser.feed((site / name).read_text())
    return parser


def _documented(site):
    with open(site / "objects.inv", "rb") as f:
        inventory = InventoryFile.load(f, "", lambda base, uri: uri)
    return {name for entries in inventory.values() for name in entries}


def _resolve(path):
    module, _, attr = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError):
        return None


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_name_has_an_entry(site, module_name):
    module = importlib.import_module(module_name)
    documented = _documented(site)
    by_object = {}
    for path in documented:
        obj = _resolve(path)
        if obj is not None:
            by_object.setdefault(id(obj), path)
    missing = [name for name in module.__all__
               if f"{module_name}.{name}" not in documented and id(getattr(module, name)) not in by_object
               and not isinstance(getattr(module, name), type(importlib))]      # submodules have their own page
    assert not missing, f"{module_name}: no API entry for {missing}"


def test_math_is_rendered(site):
    page = _page(site, "layers.html")
    assert "math" in page.classes and "MathJax" in (site / "layers.html").read_text()


def test_tutorial_pages_show_their_plots(site):
    pages = sorted((site / "tutorials").glob("[0-9][0-9]_*.html"))
    assert len(pages) == len(list((ROOT / "tutorials").glob("[0-9][0-9]_*.ipynb"))) > 0
    for page in pages:
        assert _page(site, page.relative_to(site)).tags.get("img", 0) >= 1, f"{page.name} shows no plot"


def test_version_and_changelog(site):
    index = "".join(_page(site, "index.html").text)
    assert gridgnn.__version__ in index
    assert "Unreleased" in "".join(_page(site, "changelog.html").text)


def test_no_page_points_outside_the_repository(site):
    for page in [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("gridgnn/**/*.py")]:
        assert not re.search(r"\.\./shared/|shared/DESIGN|background\.md", page.read_text()), page


def _public_objects():
    seen = set()
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and id(obj) not in seen:
                seen.add(id(obj))
                yield f"{module_name}.{name}", obj


def test_every_public_class_and_function_has_an_example():
    """A short runnable example each (pytest runs them as doctests); deprecated aliases are not taught."""
    missing = [path for path, obj in _public_objects()
               if ">>>" not in (inspect.getdoc(obj) or "") and not (obj.__doc__ or "").startswith("Deprecated")]
    assert not missing, f"no example in the docstrings of {missing}"
