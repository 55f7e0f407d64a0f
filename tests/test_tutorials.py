"""The tutorials run top to bottom, and each executed notebook matches its paired script."""
import importlib.util
import pathlib

import jupytext
import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "tutorials"
_spec = importlib.util.spec_from_file_location("tutorial_build", ROOT / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)
SCRIPTS = build.tutorial_scripts()

pytestmark = pytest.mark.tutorials


def test_there_are_eleven_tutorials():
    assert [s.stem[:2] for s in SCRIPTS] == [f"{i:02d}" for i in range(1, 12)]


def _cells(notebook):
    return [(c.cell_type, c.source.strip()) for c in notebook.cells]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: s.stem)
def test_notebook_is_in_sync_with_its_script_and_shows_results(script):
    ipynb = script.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb.name} missing: run python tutorials/build.py {script.name}"
    executed = nbformat.read(ipynb, as_version=4)
    assert _cells(executed) == _cells(jupytext.read(script)), \
        f"{ipynb.name} is out of sync with {script.name}: run python tutorials/build.py {script.name}"
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert outputs and not [o for o in outputs if o.output_type == "error"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: s.stem)
def test_tutorial_runs_top_to_bottom(script):
    notebook = build.execute(script, timeout=300)
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
