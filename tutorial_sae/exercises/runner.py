"""The machinery behind every `check_<name>` of the book's exercises (all chapters)."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

ATOL = 1e-5
RTOL = 1e-4

Case = dict[str, Any]


@dataclass(frozen=True)
class Mistake:
    """A known wrong implementation and the hint to give when the student's output matches it."""

    fn: Callable[..., Any]
    hint: str


@dataclass
class CheckResult:
    """Outcome of a checker: `passed`, and the one message that was printed."""

    name: str
    passed: bool
    message: str
    details: list[str] = field(default_factory=list)

    def _ipython_display_(self) -> None:
        # The checker has already printed `message`; echoing the result as a cell's value
        # would show the same text twice.
        return None


def _clone(case: Case) -> Case:
    return {k: v.clone() if isinstance(v, Tensor) else v for k, v in case.items()}


def _describe(case: Case) -> str:
    parts = []
    for key, value in case.items():
        if isinstance(value, Tensor):
            parts.append(f"{key}: tensor{list(value.shape)}")
        else:
            parts.append(f"{key}={value!r}")
    return ", ".join(parts)


def compare_tensors(
    got: Any, expected: Tensor, atol: float = ATOL, rtol: float = RTOL
) -> str | None:
    """None when `got` equals `expected` within torch.allclose(atol, rtol), else what differs."""
    if not isinstance(got, Tensor):
        return f"expected a torch.Tensor, got {type(got).__name__}"
    if got.shape != expected.shape:
        return f"shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
    if not got.is_floating_point():
        return f"dtype {got.dtype}, expected a floating-point tensor like {expected.dtype}"
    got = got.detach().to(expected.dtype)
    if torch.allclose(got, expected, atol=atol, rtol=rtol, equal_nan=False):
        return None
    diff = (got - expected).abs().nan_to_num(float("inf"))
    worst = int(diff.reshape(-1).argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), expected.shape))
    where = f" at index {index}" if index else ""
    return (
        f"values differ{where}: got {got.reshape(-1)[worst].item():.6g}, expected "
        f"{expected.reshape(-1)[worst].item():.6g} ({int((diff > atol + rtol * expected.abs()).sum())}"
        f" of {expected.numel()} entries outside atol={atol}, rtol={rtol})"
    )


def _student_error(name: str, err: Exception) -> str:
    if isinstance(err, NotImplementedError):
        return (
            f"✗ {name}: not implemented yet (replace `raise NotImplementedError` with your code)."
        )
    frames = traceback.extract_tb(err.__traceback__)
    last = frames[-1] if frames else None
    where = f" in line `{last.line}`" if last is not None and last.line else ""
    return f"✗ {name}: your function raised {type(err).__name__}: {err}{where}."


def _safe_compare(compare: Callable[[Any, Any], str | None], got: Any, expected: Any) -> str | None:
    try:
        return compare(got, expected)
    except Exception as err:  # an odd return value is the student's problem to hear about
        return f"could not compare your output ({type(got).__name__}) with the reference: {err}"


def _matches(
    mistake: Mistake, got: Any, case: Case, compare: Callable[[Any, Any], str | None]
) -> bool:
    try:
        with torch.no_grad():
            wrong = mistake.fn(**_clone(case))
        return compare(got, wrong) is None
    except Exception:  # a mistake that cannot run on this case simply does not match
        return False


def run_check(
    name: str,
    student_fn: Callable[..., Any],
    reference: Callable[..., Any],
    cases: Sequence[Case],
    compare: Callable[[Any, Any], str | None] = compare_tensors,
    mistakes: Sequence[Mistake] = (),
    hint: str = "",
    verbose: bool = True,
) -> CheckResult:
    """Call `student_fn` and `reference` on each seeded case; print one line; never raise.

    On a mismatch, the student's output is compared with each known mistake: a match gives
    that mistake's hint, otherwise the generic `hint`.
    """
    if not callable(student_fn):
        result = CheckResult(name, False, f"✗ {name}: expected a function, got {student_fn!r}.")
    else:
        result = _run_cases(name, student_fn, reference, cases, compare, mistakes, hint)
    if verbose:
        print(result.message)
    return result


def _run_cases(
    name: str,
    student_fn: Callable[..., Any],
    reference: Callable[..., Any],
    cases: Sequence[Case],
    compare: Callable[[Any, Any], str | None],
    mistakes: Sequence[Mistake],
    hint: str,
) -> CheckResult:
    for number, case in enumerate(cases, start=1):
        with torch.no_grad():
            expected = reference(**_clone(case))
        try:
            got = student_fn(**_clone(case))
        except Exception as err:  # a student's bug must never stop the notebook
            return CheckResult(name, False, _student_error(name, err))
        problem = _safe_compare(compare, got, expected)
        if problem is None:
            continue
        matched = next((m.hint for m in mistakes if _matches(m, got, case, compare)), None)
        message = (
            f"✗ {name}: wrong on case {number} of {len(cases)} ({_describe(case)}): {problem}. "
            f"Hint: {matched or hint}"
        )
        return CheckResult(name, False, message, details=[problem])
    return CheckResult(
        name,
        True,
        f"✓ {name}: matches the reference on {len(cases)} seeded cases (atol={ATOL}, rtol={RTOL}).",
    )
