"""Say which model a precomputed result came from when the chapter loaded another (chapters 3-5).

The shipped results (chapter 3's sweep and dead-feature comparison, chapter 5's size
comparison) were computed on mini. Run on gelu-1l, a chapter still shows them, with one line
saying so on every table and figure; on mini these helpers change nothing.
"""

from __future__ import annotations

from matplotlib.figure import Figure

from tutorial_sae.paths import assets_dir

BOOK_MODELS = ("mini", "gelu-1l")


def _check_model(name, what: str) -> str:
    if not isinstance(name, str) or name not in BOOK_MODELS:
        raise ValueError(
            f"expected {what} to be one of {list(BOOK_MODELS)} (a resolved model name, e.g. "
            f"ts.preset_for(model).model, never 'auto'), got {name!r}"
        )
    return name


def source_model(result=None) -> str:
    """The model a precomputed result was made on: its settings' "model" when it records one,
    else the model whose asset folder ships the results (mini)."""
    settings = getattr(result, "settings", None)
    if isinstance(result, dict) and "model" in result:
        settings = result
    named = settings.get("model") if isinstance(settings, dict) else None
    return _check_model(named if named is not None else assets_dir().name, "the result's model")


def provenance(loaded: str, made_on=None) -> str:
    """ "precomputed on mini, not on gelu-1l (the model loaded here)", or "" when they agree.

    `made_on` is the result itself (its settings may name its model; default: the shipped
    results' model) or, for a result computed in this run, the name of the model it ran on.
    """
    loaded = _check_model(loaded, "the loaded model")
    if isinstance(made_on, str):
        source = _check_model(made_on, "made_on")
    else:
        source = source_model(made_on)
    if source == loaded:
        return ""
    return f"precomputed on {source}, not on {loaded} (the model loaded here)"


def label_text(text: str, loaded: str, made_on=None) -> str:
    """A printed table with its provenance line on top (unchanged when the models agree)."""
    if not isinstance(text, str):
        raise TypeError(f"expected the table as a str, got {type(text).__name__}")
    note = provenance(loaded, made_on)
    return f"[{note}]\n{text}" if note else text


def label_figure(fig: Figure, loaded: str, made_on=None) -> Figure:
    """`fig` with its provenance added under the suptitle (unchanged when the models agree)."""
    if not isinstance(fig, Figure):
        raise TypeError(f"expected a matplotlib Figure, got {type(fig).__name__}")
    note = provenance(loaded, made_on)
    if note:
        title = fig.get_suptitle()
        fig.suptitle(f"{title}\n({note})" if title else f"({note})")
        fig.tight_layout()
    return fig
