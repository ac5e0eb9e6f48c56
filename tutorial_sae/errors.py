"""The errors the package raises on purpose, in one place (all chapters; the appendix lists them).

Every public function checks its input before doing any work and raises one of these with a
message naming the argument or file, what was expected and what came. Anything else escaping
the package is a bug worth reporting.
"""

from __future__ import annotations


class HubUnavailableError(OSError):
    """A hub file is neither reachable nor in the local cache."""


class HubGaveUpError(HubUnavailableError):
    """The hub failed repeatedly during one load, so the package stopped the clients' retries."""


class NonFiniteLossError(FloatingPointError):
    """Training stopped because the loss became NaN or infinite."""


# (error type, when it is raised, what to do): the table the appendix shows.
ERRORS = (
    (
        "ValueError",
        "an argument has the wrong type, shape, dtype or range, holds NaN/inf or is empty; "
        "a config field is out of range; a file's content is malformed",
        "read the message: it names the argument or file, what was expected and what came",
    ),
    (
        "FileNotFoundError",
        "a shipped asset, the offline corpus or a precomputed result is missing",
        "run the build command the message names (e.g. `make corpus`)",
    ),
    (
        "HubUnavailableError (an OSError)",
        "a model, SAE or dataset must come from the Hugging Face hub and it cannot be reached",
        'use MODEL = "mini" (offline), or "auto" to fall back to it by itself',
    ),
    (
        "HubGaveUpError (a HubUnavailableError)",
        "the hub answered but failed twice during one load (errors, a dropped or corrupt "
        "download); nothing half-written is kept in the cache",
        'try again later, or use MODEL = "mini"; "auto" falls back to mini by itself',
    ),
    (
        "NonFiniteLossError (a FloatingPointError)",
        "training produced a NaN or infinite loss; the last good checkpoint is kept",
        "lower the learning rate or check the activations; resume from the checkpoint",
    ),
)


def errors_markdown() -> str:
    """ERRORS as a markdown table."""
    rows = ["| error | raised when | what to do |", "| --- | --- | --- |"]
    rows += [
        f"| `{name.split(' ')[0]}`{name[len(name.split(' ')[0]) :]} | {when} | {fix} |"
        for name, when, fix in ERRORS
    ]
    return "\n".join(rows)
