"""Sphinx configuration of gridgnn's documentation.

Build (warnings are errors, every cross-reference must resolve)::

    python -m sphinx -W -n -b html docs docs/_build/html

The tutorials are rendered from their executed notebooks in ``tutorials/`` (copied in at
build time, never re-executed). Cross-references to Python, torch, PyTorch Geometric and
networkx resolve through intersphinx inventories written from the installed packages
(``docs/inventories.py``), so the build needs no network.
"""
import pathlib
import shutil
import sys

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS))
sys.path.insert(0, str(ROOT))

import inventories  # noqa: E402

import gridgnn  # noqa: E402

project = "gridgnn"
author = "the gridgnn developers"
copyright = "gridgnn developers"
version = release = gridgnn.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "myst_nb",
]
exclude_patterns = ["_build", "_inventories", "**.ipynb_checkpoints"]
nitpicky = True

# -- API reference --------------------------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "none"               # the docstrings' Args and Shapes say the types, in words and shapes
autodoc_inherit_docstrings = False     # not torch's Module.forward text under every forward
nitpick_ignore_regex = [("py:class", r"gridgnn\.(\w+\.)*_\w+")]       # private base classes are not documented
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_param = False           # "x (Tensor, optional)" rendered as written, not as cross-references
napoleon_use_rtype = False
napoleon_custom_sections = [("Shapes", "params_style")]

# -- notebooks and Markdown -----------------------------------------------------------------------------
nb_execution_mode = "off"               # the notebooks in tutorials/ are stored executed
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
suppress_warnings = ["mystnb.unknown_mime_type"]

TUTORIALS = DOCS / "tutorials"
TUTORIALS.mkdir(exist_ok=True)
for notebook in sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.ipynb")):
    shutil.copyfile(notebook, TUTORIALS / notebook.name)

# -- cross-references to other projects, resolved offline ----------------------------------------------
intersphinx_mapping = inventories.write(DOCS / "_inventories")
intersphinx_timeout = 1

html_theme = "furo"
html_title = f"gridgnn {release}"

# -- pages generated from the repository at build time ---------------------------------------------------
GENERATED = DOCS / "_generated"
shutil.rmtree(GENERATED, ignore_errors=True)
GENERATED.mkdir()


def _write_cli_help() -> None:
    from gridgnn.__main__ import build_parser
    parser = build_parser()
    (GENERATED / "cli_help.txt").write_text(parser.format_help())
    verify = next(a for a in parser._subparsers._group_actions if a.dest == "command").choices["verify"]
    (GENERATED / "cli_verify_help.txt").write_text(verify.format_help())


def _write_benchmark_results() -> None:
    """Every committed result table under a heading, with its plot where the benchmark draws one."""
    results = ROOT / "benchmarks" / "results"
    parts = []
    for table in sorted(results.glob("*.md")):
        text = table.read_text().strip().split("\n")
        title = text[0].lstrip("# ").strip() if text and text[0].startswith("#") else table.stem
        body = "\n".join(text[1:]).strip()
        for plot in results.glob("*.png"):                    # the tables show their plots: copy, re-point
            if plot.name in body:
                shutil.copyfile(plot, GENERATED / plot.name)
                body = body.replace(f"]({plot.name})", f"](_generated/{plot.name})")
        parts.append(f"## {title}\n\n`benchmarks/results/{table.name}`\n\n{body}\n")
    (DOCS / "benchmark_results.md").write_text("# Result tables\n\n" + "\n".join(parts))


_write_cli_help()
_write_benchmark_results()
