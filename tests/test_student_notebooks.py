"""The chapters' exercise structure, and the generated student notebooks: in sync, no leaks."""

import ast
import importlib.util
import re
from pathlib import Path

import nbformat
import pytest
import yaml
from IPython.core.inputtransformer2 import TransformerManager

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location(
    "make_student_notebooks", ROOT / "scripts" / "make_student_notebooks.py"
)
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)

CHAPTERS = gen.chapters()


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _solution_cells(nb):
    return [c for c in nb.cells if "solution" in c.metadata.get("tags", [])]


def _body_lines(source):
    """The solution lines after each function's docstring (what must not reach students)."""
    lines = source.splitlines()
    body = []
    for node in ast.parse(source).body:
        body += lines[node.body[0].end_lineno : node.end_lineno]
    return [line.strip() for line in body if re.search(r"\w", line)]


def test_there_are_chapters():
    assert [p.name for p in CHAPTERS][:2] == ["01_math.ipynb", "02_loss.ipynb"]


def test_student_notebooks_are_up_to_date(capsys):
    assert gen.main(["--check"]) == 0, capsys.readouterr().out


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_no_solution_line_leaks_into_the_student_notebook(chapter):
    student_text = (gen.STUDENT / chapter.name).read_text(encoding="utf-8")
    solutions = _solution_cells(nbformat.read(chapter, as_version=4))
    assert solutions
    for cell in solutions:
        for line in _body_lines(cell.source):
            assert line not in student_text, f"solution line leaked: {line!r}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_student_stubs_keep_signatures_and_raise_not_implemented(chapter):
    chapter_nb = nbformat.read(chapter, as_version=4)
    student_nb = nbformat.read(gen.STUDENT / chapter.name, as_version=4)
    namespace = {}
    imports = TransformerManager().transform_cell(_code_cells(student_nb)[0].source)
    exec(compile(imports, "imports", "exec"), namespace)
    by_id = {c.id: c for c in student_nb.cells}
    for cell in _solution_cells(chapter_nb):
        stub = by_id[cell.id]
        assert "tags" not in stub.metadata or "solution" not in stub.metadata["tags"]
        exec(compile(stub.source, "stub", "exec"), namespace)
        for node in ast.parse(cell.source).body:
            signature = cell.source.splitlines()[node.lineno - 1]
            assert signature in stub.source
            args = [None] * len(node.args.args)
            with pytest.raises(NotImplementedError):
                namespace[node.name](*args)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_student_notebook_tells_students_where_to_write(chapter):
    text = (gen.STUDENT / chapter.name).read_text(encoding="utf-8")
    n_exercises = len(_solution_cells(nbformat.read(chapter, as_version=4)))
    assert "collapsed cell" not in text
    assert text.count(gen.STUDENT_NOTE) == n_exercises


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_and_student_notebook_have_no_outputs(chapter):
    for path in (chapter, gen.STUDENT / chapter.name):
        for cell in _code_cells(nbformat.read(path, as_version=4)):
            assert cell.outputs == [] and cell.execution_count is None, f"{path}: outputs"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_has_imports_then_scalar_parameters(chapter):
    code = _code_cells(nbformat.read(chapter, as_version=4))
    assert "import tutorial_sae" in code[0].source
    assert code[1].metadata.get("tags") == ["parameters"]
    for node in ast.parse(code[1].source).body:
        assert isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant), ast.dump(node)
    names = {t.id for node in ast.parse(code[1].source).body for t in node.targets}
    assert {"SEED", "FAST"} <= names


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_every_exercise_has_difficulty_hint_solution_and_check(chapter):
    cells = nbformat.read(chapter, as_version=4).cells
    positions = [i for i, c in enumerate(cells) if "solution" in c.metadata.get("tags", [])]
    assert len(positions) >= 3
    for i in positions:
        statement, solution, check = cells[i - 1], cells[i], cells[i + 1]
        assert statement.cell_type == "markdown"
        assert "**Difficulty**" in statement.source and "minutes" in statement.source
        assert "<details>" in statement.source and "Hint" in statement.source
        assert gen.SOLUTION_NOTE in statement.source
        assert "hide-input" in solution.metadata["tags"]
        name = ast.parse(solution.source).body[0].name
        assert re.fullmatch(rf"check_\w+\({name}\)", check.source.strip())


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_colab_install_uses_the_configured_repository(chapter):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = config["repository"]
    setup = _code_cells(nbformat.read(chapter, as_version=4))[0].source
    assert f"git+{repo['url']}@{repo['branch']}" in setup


def test_stub_source_rejects_cells_that_are_not_functions():
    with pytest.raises(ValueError, match="only function definitions"):
        gen.stub_source("x = 1\n")
    with pytest.raises(ValueError, match="docstring"):
        gen.stub_source("def f():\n    return 1\n")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_nbmake_runs_the_student_notebook_in_fast_mode(chapter):
    student = nbformat.read(gen.STUDENT / chapter.name, as_version=4)
    (params,) = [c for c in student.cells if "parameters" in c.metadata.get("tags", [])]
    assert params.metadata["nbmake"]["mock"] == {"FAST": True}
