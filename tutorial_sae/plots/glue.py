"""Numbers from a run into the book's prose with myst-nb `glue` (every chapter).

A chapter calls `glue("name", value)` and its markdown says {glue:text}`name:.1%`; the number
in the text is then always the one this run produced (FAST mode, another torch, gelu-1l).
Outside a Jupyter Book build (e.g. Colab without myst-nb) the call just returns the value.
"""

from __future__ import annotations

import numbers


class _Quiet:
    # Returned by glue: the number itself, but a cell that ends with `ts.glue(...)` shows no
    # stray output (the value is already on its way to the prose).
    def _ipython_display_(self) -> None:
        return None


class GluedInt(_Quiet, int):
    """An int that IPython does not echo as a cell's result."""


class GluedFloat(_Quiet, float):
    """A float that IPython does not echo as a cell's result."""


class GluedValues(_Quiet, dict):
    """The dict `glue_all` returns: its numbers by glue name, not echoed as a cell's result."""


def _plain(value):
    """A Python int/float for a number (tensor, numpy scalar), so myst-nb can format it."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        raise ValueError(f"expected a single number to glue, got {type(value).__name__}: {value!r}")
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def glue(name: str, value, display: bool = False):
    """Store `value` under `name` for {glue:text}`name:<format>` in the chapter's markdown.

    Returns the number (as GluedInt/GluedFloat, which IPython does not echo), so
    `x = glue("x", compute())` keeps one line per number.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"expected a glue name made of letters, digits and _, got {name!r}")
    value = _plain(value)
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        pass
    else:
        myst_glue(name, value, display=display)
    return GluedInt(value) if isinstance(value, int) else GluedFloat(value)


def glue_all(values: dict, prefix: str = "") -> dict:
    """`glue` every number of `values` as prefix + key (non-numbers are skipped); returns them."""
    glued = GluedValues()
    for key, value in values.items():
        if isinstance(value, bool) or not (
            isinstance(value, numbers.Number) or getattr(value, "ndim", None) == 0
        ):
            continue
        glued[prefix + key] = glue(prefix + key, value)
    return glued
