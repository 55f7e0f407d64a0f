"""Execute the tutorial scripts and write their paired, executed notebooks.

Each ``NN_name.py`` (jupytext percent format, the reviewed source) is run top to
bottom with nbclient and saved as ``NN_name.ipynb`` with its outputs. The test
suite executes the same way (``tests/test_tutorials.py``). Usage:

    python tutorials/build.py [NN_name.py ...]
"""
from __future__ import annotations

import pathlib
import sys

import jupytext
import nbformat
from nbclient import NotebookClient

HERE = pathlib.Path(__file__).resolve().parent


def tutorial_scripts():
    """The tutorial sources, in reading order."""
    return sorted(HERE.glob("[0-9][0-9]_*.py"))


def execute(script: pathlib.Path, timeout: int = 600) -> nbformat.NotebookNode:
    """Run ``script`` as a notebook (in the tutorials folder) and return it with outputs."""
    notebook = jupytext.read(script)
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(HERE)}}).execute()
    return notebook


def main(argv=None) -> int:
    names = (argv if argv is not None else sys.argv[1:])
    scripts = [HERE / name for name in names] if names else tutorial_scripts()
    for script in scripts:
        notebook = execute(script)
        jupytext.write(notebook, script.with_suffix(".ipynb"))
        print(f"wrote {script.with_suffix('.ipynb').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
