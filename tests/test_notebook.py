"""examples/quickstart.ipynb runs top to bottom in a fresh headless kernel."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


def test_quickstart_notebook_runs_and_shows_its_figures(tmp_path, monkeypatch):
    # The kernel inherits the environment: fewer identities and epochs than the defaults.
    monkeypatch.setenv("QUICKSTART_IDS", "24")
    monkeypatch.setenv("QUICKSTART_EPOCHS", "4")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # a failing cell raises CellExecutionError with its traceback
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) == 2  # the ranked list and the CMC curve, inline
    stdout = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stdout")
    assert "rank1" in stdout and "mAP_nd" in stdout
    assert "the served embeddings equal the extractor's" in stdout
    work = tmp_path / "quickstart_out"
    assert [p.parent.name for p in work.glob("run-*/model.keras")] == ["run-ids24-epochs4"]
    assert (work / "saved_models" / "quickstart" / "1" / "saved_model.pb").is_file()
