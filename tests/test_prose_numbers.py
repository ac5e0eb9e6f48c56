"""Numbers in the chapters' prose come from the run (myst-nb glue), not from the keyboard.

Every number left in a markdown cell once maths, code, glue roles, headings and section or
exercise references are removed must be listed below with the reason it is not a run's
output (a fact from a paper, a model's architecture, a definition). A number the chapter
computes has no reason to be here: glue it, or make the sentence qualitative.
"""

import json
import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"

# Facts true whatever the run: architecture of the two models, papers' numbers, definitions.
MODELS = {
    "512": "mini's d_mlp and gelu-1l's d_model (architecture)",
    "2,048": "gelu-1l's d_mlp (architecture)",
    "48,262": "gelu-1l's vocabulary size (architecture)",
    "12": "gelu-1l's unembedding / MLP multiply-adds, 48,262 x 512 / (2 x 512 x 2,048)",
    "16,384": "Nanda's run1 dictionary size (his release)",
}
NANDA = {
    "49": "Nanda's run1 seed (his config)",
    "0.9": "Adam beta1 of Nanda's run1 (his config)",
    "0.99": "Adam beta2 of Nanda's run1 (his config)",
    "384": "Nanda's run1 buffer of 384 batches (his config)",
    "2": "Nanda's run1 trained on 2 billion tokens (his config)",
    "90%": "Nanda's reported CE loss recovered for run1",
    "0.016": "Nanda's reported MSE for run1",
}
DEFINITIONS = {
    "10%": "the dense-feature threshold (core.metrics.DENSE_THRESHOLD)",
    "0": "the ends of a definition (a ratio of 0 or 1, f_i > 0, position 0)",
    "1": "the ends of a definition (a ratio of 0 or 1, unit norm)",
    "200": "the default step count of chapter 3, named only to scope a description of its curve",
}
# A measurement of the book's earlier, fixed ghost-grad code: no run of today's code makes it.
BUG_HISTORY = {
    "56%": "share of features silent over the window with the old ghost term (fixed bug)",
    "160": "step at which the old ghost term's dead share peaked (fixed bug)",
    "21%": "held-out dead share with the old ghost term (fixed bug)",
    "3.8%": "held-out dead share without treatment in that old run (fixed bug)",
}
ALLOWED: dict[str, dict[str, str]] = {
    "01_math": {
        **DEFINITIONS,
        "2016": "Hendrycks & Gimpel's GELU paper (citation year)",
        "2022": "Elhage et al.'s toy models paper (citation year)",
    },
    "02_loss": {**DEFINITIONS, "2023": "Bricken et al. (citation year)"},
    "03_training": {
        **MODELS,
        **NANDA,
        **DEFINITIONS,
        **BUG_HISTORY,
        "6": "SAELens 6 (version)",
        "2024": "Anthropic's January 2024 circuits update (citation date)",
        "8": "mini/run1's expansion factor (the shipped SAE's config, training.presets.RUN1)",
    },
    "04_neighbourhoods": {
        **MODELS,
        "1,024": "mini/x2's dictionary size (shipped SAE)",
        "4,096": "mini/run1's dictionary size (shipped SAE)",
        "2": "expansion factor of mini/x2; a 2D projection; families of 2 to 4 children (definition)",
        "3": "a 3D projection",
        "4": "expansion factor of mini/x4; families of 2 to 4 children (definition)",
        "8": "expansion factor of mini/run1 (shipped SAE)",
        "0.1%": "the density floor of the exemplar features (analysis.features, a definition)",
        "90%": "the language purity of the exemplar features (a definition)",
        "0.5": "the decoder cosine that makes a child of a splitting family (a definition)",
        "80%": "the coverage that makes a splitting family (a definition)",
        "20": "the number of top activations a dedicated feature is judged on (a definition)",
        "1": "trustworthiness's best value (definition)",
    },
    "05_specificity": {
        **MODELS,
        **DEFINITIONS,
        "128": "the token rows' length: the models' training context (data.tokens)",
        "1,024": "mini/x2's dictionary size (shipped SAE)",
        "4,096": "mini/run1's dictionary size (shipped SAE)",
        "80%": "the precision that puts a feature in a script's family (a definition)",
        "20%": "a polysemantic neuron's least share of firings on each concept (a definition)",
        "0.8": "the precision / specificity threshold of a family or a concept's feature (definition)",
        "42": "the seed paper's feature 42 (paper fact)",
    },
    "06_ablation": {
        **MODELS,
        "40%": "the seed paper's figure 9: over 40% of other features changed (paper fact)",
        "2024": "Templeton et al. 2024 / Marks et al. 2024 (citation year)",
    },
    "08_rome": {**DEFINITIONS},
    "appendix_data": {
        **MODELS,
        "95/5": "the corpus's train/eval split by document hash (data.corpus.EVAL_FRACTION)",
        "1998": "the People's Daily 1998 corpus (its name)",
        "2.0": "Apache 2.0, the CJK font's licence (its name)",
        "90%": "Nanda's reported CE loss recovered for run1",
    },
}

# A number not glued to letters on either side: "L0", "run1", "gelu-1l", "fp16", "8x" are names.
NUMBER = re.compile(r"(?<![\w/.\-])-?\d[\d,]*(?:\.\d+)?(?:/\d+)?%?(?![\w\-])")
STRIP = [
    re.compile(r"```.*?```", re.S),  # fenced code
    re.compile(r"\$\$.*?\$\$", re.S),  # display maths
    re.compile(r"\$[^$\n]+\$"),  # inline maths
    re.compile(r"\{[\w:-]+\}`[^`]*`"),  # roles: {glue:text}`name:.1%`
    re.compile(r"`[^`]*`"),  # code spans
    re.compile(r"https?://\S+"),
    re.compile(r"^#+ .*$", re.M),  # headings carry section numbers
    re.compile(r"^\s*\d+\.\s", re.M),  # numbered list markers
    re.compile(r"\*\*Difficulty\*\*.*$", re.M),  # the exercise's difficulty and minutes line
    re.compile(
        r"\b(?:[Ss]ections?|[Cc]hapters?|[Ee]xercises?|[Ff]igures?)\s+[\d.]+"
        r"(?:\s*[-–]\s*[\d.]+)?(?:\s+and\s+[\d.]+)?"
    ),
    re.compile(r"\b(?:19|20)\d\d\b(?=[),;])"),  # a citation's year: "(Elhage et al., 2022)"
]


def typed_numbers(markdown: str) -> list[str]:
    """The numbers a reader sees in `markdown` that no glue role produced."""
    for pattern in STRIP:
        markdown = pattern.sub(" ", markdown)
    return [m.group().rstrip(".,") for m in NUMBER.finditer(markdown)]


def chapters() -> list[Path]:
    return sorted(
        p for p in BOOK.glob("*.ipynb") if p.stem[:2].isdigit() or p.stem.startswith("appendix")
    )


def test_the_detector_finds_typed_results_and_skips_names():
    found = typed_numbers(
        "## 3.5 Choosing\nAfter 200 steps our SAE recovers 68% at L0 77 (section 3.2, gelu-1l, "
        "run1, 8x, fp16). Its loss is {glue:text}`ce:.1%` and $\\lambda = 1$; `x[0, 3]`.\n"
        "1. a list item; **Difficulty** ★☆ · **about 5 minutes**"
    )
    assert found == ["200", "68%", "77"]


@pytest.mark.parametrize("notebook", chapters(), ids=lambda p: p.stem)
def test_numbers_in_prose_are_glued_or_justified(notebook):
    allowed = ALLOWED.get(notebook.stem, {})
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    typed = {}
    for i, cell in enumerate(cells):
        if cell["cell_type"] == "markdown":
            for number in typed_numbers("".join(cell["source"])):
                if number not in allowed:
                    typed.setdefault(number, i)
    assert not typed, (
        f"{notebook.name}: numbers typed into the prose (number: cell) {typed}; insert them "
        "with glue, or add them to ALLOWED in this test with the reason they are not a run's output"
    )
