"""Chapters 3-8 with MODEL="auto", FAST=True against the loopback hub (papermill): "auto" picks
gelu-1l (random weights of the real shapes, Nanda's run1/run2 SAEs, c4-code-20k rows), each
chapter finishes, says it ran on gelu-1l, reads gelu-1l's own settings and labels every result
precomputed on mini; chapter 8 (no GPT-2 on this hub) falls back to its fact model, saying why.

What runs is each chapter's student copy (book/student/): the chapter cell for cell, with every
exercise solution a stub (tests/test_student_notebooks.py checks the copies are current). So one
execution per chapter covers both what a Colab reader runs online and the student copy running
top to bottom with its exercises unsolved; the solutions themselves run in the book's execution
(tests/test_notebooks.py), and their checks use their own seeded inputs, whatever the model.

Marked `online` (and `slow`: six chapters on a 2,048-wide MLP take minutes; the run is shared by
the tests below, one hub cache for the module as a reader's Colab session has one).
"""

import json
import time
from pathlib import Path

import pytest
from hub_fixture.plugin import fixture_hub  # noqa: F401  (the session fixture)

BOOK = Path(__file__).resolve().parent.parent / "book"
STUDENT = BOOK / "student"
CHAPTERS = (
    "03_training",
    "04_neighbourhoods",
    "05_specificity",
    "06_ablation",
    "07_random_walks",
    "08_rome",
)
pytestmark = [pytest.mark.online, pytest.mark.slow]
GELU_SAYS = "auto: using gelu-1l"  # the loader's one line when the hub answers
PRECOMPUTED = "precomputed on mini, not on gelu-1l (the model loaded here)"


class Executed:
    """One executed chapter: its text outputs (stdout, plain text, html) and glued values."""

    def __init__(self, path: Path, seconds: float, unrouted: list[str]):
        self.path, self.seconds, self.unrouted = path, seconds, unrouted
        nb = json.loads(path.read_text())
        self.text: list[str] = []
        self.glued: dict[str, float] = {}
        self.errors: list[str] = []
        for cell in nb["cells"]:
            for out in cell.get("outputs", []):
                if out["output_type"] == "stream":
                    self.text.append("".join(out["text"]))
                elif out["output_type"] == "error":
                    self.errors.append(f"{out['ename']}: {out['evalue']}")
                data = out.get("data", {})
                name = out.get("metadata", {}).get("scrapbook", {}).get("name")
                if name is not None:
                    self.glued[name] = float(data["application/papermill.record/text/plain"])
                    continue
                if "application/vnd.jupyter.widget-view+json" in data:
                    continue  # a progress bar
                for mime in ("text/plain", "text/html", "text/markdown"):
                    if mime in data:
                        self.text.append("".join(data[mime]))

    @property
    def all_text(self) -> str:
        return "\n".join(self.text)


@pytest.fixture(scope="module")
def run_online(fixture_hub, tmp_path_factory):  # noqa: F811
    """chapter name -> Executed (run on first request, kept; a failure is kept and re-raised)."""
    import papermill

    cache = tmp_path_factory.mktemp("online-chapters-cache")
    out_dir = tmp_path_factory.mktemp("online-chapters")
    done: dict[str, Executed | BaseException] = {}

    def run(name: str) -> Executed:
        if name not in done:
            out = out_dir / f"{name}.ipynb"
            unrouted = fixture_hub.hub.unrouted
            before = len(unrouted)
            start = time.perf_counter()
            try:
                with fixture_hub.environment(cache):
                    papermill.execute_notebook(
                        str(STUDENT / f"{name}.ipynb"),
                        str(out),
                        parameters={"MODEL": "auto", "FAST": True},
                        kernel_name="python3",
                        cwd=str(STUDENT),
                        progress_bar=False,
                        execution_timeout=900,
                    )
                seconds = time.perf_counter() - start
                done[name] = Executed(out, seconds, unrouted[before:])
            except Exception as error:
                done[name] = error
            # requests the hub has no route for, kept with the chapter (the session's hub is
            # shared: other modules assert on its list)
            del unrouted[before:]
        result = done[name]
        if isinstance(result, BaseException):
            raise AssertionError(f"{name} failed under MODEL='auto', FAST=True") from result
        return result

    return run


# What each chapter must print under "auto" on the hub: the loader's line, its own line naming
# gelu-1l's sizes, and (for results shipped from mini) the provenance line.
SAYS = {
    "03_training": (
        GELU_SAYS,
        "gelu-1l: d_model 512, d_mlp 2048",
        f"The slider's figures were {PRECOMPUTED}.",
    ),
    "04_neighbourhoods": (
        GELU_SAYS,
        "SAEs: {'run2': 'gelu-1l/run2', 'run1': 'gelu-1l/run1'}",
        "trustworthiness of a sample: 4,096 of 16,384 points",
    ),
    "05_specificity": (
        GELU_SAYS,
        "gelu-1l: d_mlp 2048, SAE with 16,384 features",
        f"The size comparison was {PRECOMPUTED}.",
    ),
    "06_ablation": (GELU_SAYS, "gelu-1l: d_mlp 2048, SAE 16,384 features"),
    "07_random_walks": (GELU_SAYS,),
}


def _exercise_count(name: str) -> int:
    """Check cells of the chapter (each calls one `check_<name>` alone)."""
    cells = json.loads((STUDENT / f"{name}.ipynb").read_text())["cells"]
    return sum(
        c["cell_type"] == "code" and "".join(c["source"]).lstrip().startswith("check_")
        for c in cells
    )


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_finishes_on_the_hub_without_a_failed_check(run_online, name):
    ran = run_online(name)
    assert not ran.errors
    if name != "08_rome":
        assert not ran.unrouted, "a request the fixture hub does not serve"
    # every exercise is a stub here: each check ran and said so, and nothing else failed
    failed = [line for line in ran.all_text.splitlines() if line.startswith("✗")]
    assert failed and all("not implemented yet" in line for line in failed), failed
    assert len(failed) == _exercise_count(name)
    print(f"{name}: {ran.seconds:.0f} s under MODEL='auto', FAST=True")


@pytest.mark.parametrize("name", CHAPTERS[:5])
def test_chapter_says_it_runs_gelu_1l_and_labels_what_came_from_mini(run_online, name):
    ran = run_online(name)
    text = ran.all_text
    for line in SAYS[name]:
        assert line in text
    assert "mini:" not in text and "using mini" not in text
    assert ran.glued.get("d_mlp", 2048) == 2048


def test_chapter_3_uses_the_gelu_1l_preset(run_online):
    ran = run_online("03_training")
    g = ran.glued
    assert (g["d_mlp"], g["expansion"], g["d_sae"]) == (2048, 4, 8192)
    assert g["l1_coeff"] == pytest.approx(3e-4 * 4096)
    assert g["pre_d_sae"] == 16384, "the pretrained SAE is Nanda's run1"
    # the dead-feature comparison and the l1 sweep are mini's: each table says so on top
    tables = [t for t in ran.text if "l1_coeff" in t or t.lstrip("[").startswith("precomputed")]
    assert sum(t.startswith(f"[{PRECOMPUTED}]\n") for t in ran.text) == 2, tables


def test_chapter_4_and_5_read_nandas_saes_and_the_code_text(run_online):
    assert run_online("04_neighbourhoods").glued["d_sae_big"] == 16384
    glued = run_online("05_specificity").glued
    # c4-code rows of stdlib text have no Han or Arabic: the chapter's code/Latin fallback
    assert "han_feature" not in glued and "arabic_feature" not in glued
    assert {"code_feature", "latin_feature"} & set(glued)


def test_chapter_8_falls_back_to_the_fact_model_with_one_line_why(run_online):
    """This hub has no GPT-2 repo: "auto" reaches it (gelu-1l answers), GPT-2 fails to load, and
    the chapter runs on its shipped fact model, saying so once with the reason."""
    ran = run_online("08_rome")
    lines = [line for line in ran.all_text.splitlines() if line.startswith("chapter 8 runs on")]
    assert len(lines) == 1, ran.all_text[-3000:]
    assert lines[0].startswith("chapter 8 runs on the fact model")
    assert "auto: GPT-2 failed to load" in lines[0] and "openai-community/gpt2" in lines[0]
    assert (ran.glued["n_layers"], ran.glued["d_model"]) == (3, 128), "the fact model's sizes"
    assert not any(k.startswith("gpt2_") for k in ran.glued)
    # what GPT-2's load asked of this hub: TransformerLens names the repo "gpt2"
    assert ran.unrouted and all("gpt2" in request for request in ran.unrouted), ran.unrouted


def test_fast_size_shrinks_only_gelu_1l_and_only_in_fast():
    """What the chapters' FAST sizes become: mini's unchanged (its glued values stay put)."""
    from tutorial_sae.training.presets import preset_for

    mini, gelu = preset_for("mini"), preset_for("gelu-1l")
    assert [mini.fast_size(n, True, minimum=12) for n in (4096, 24, 8)] == [4096, 24, 8]
    assert gelu.fast_size(131_072, False) == 131_072
    assert [gelu.fast_size(n, True) for n in (131_072, 512, 40, 4)] == [16_384, 64, 5, 1]
    assert gelu.fast_size(24, True, minimum=12) == 12
    assert gelu.fast_size(8, True, minimum=12) == 8, "never more than the chapter asked"
    with pytest.raises(ValueError, match="positive int count"):
        gelu.fast_size(0, True)
    with pytest.raises(TypeError, match="FAST"):
        gelu.fast_size(8, "yes")
