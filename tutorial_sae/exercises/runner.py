"""The machinery behind every `check_<name>` of the book's exercises (all chapters)."""

from __future__ import annotations

import contextlib
import signal
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

ATOL = 1e-5
RTOL = 1e-4
# Seconds one case may take; a slow or looping student function is stopped, not waited for.
TIME_LIMIT_S = 5.0
_settings = {"time_limit": TIME_LIMIT_S}


def set_time_limit(seconds: float | None) -> None:
    """Change the seconds every checker allows one case (None: no limit), e.g. on a slow laptop."""
    if seconds is not None and (isinstance(seconds, bool) or not seconds > 0):
        raise ValueError(f"expected a time limit > 0 seconds or None, got {seconds!r}")
    _settings["time_limit"] = seconds


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


class CheckTimeout(Exception):
    """A student function ran past the checker's time limit (raised inside it by a timer)."""


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Raise CheckTimeout in the running code after `seconds` (main thread, POSIX only).

    A timer signal interrupts Python code between bytecodes and torch between operations, so
    the kernel survives. Where signals are unavailable (another thread, Windows) no limit is set.
    """
    usable = (
        seconds is not None
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def stop(signum, frame):
        raise CheckTimeout(f"it ran for more than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _student_error(name: str, err: BaseException) -> str:
    if isinstance(err, CheckTimeout):
        return (
            f"✗ {name}: your function was stopped: {err} on one case (the reference takes a "
            "fraction of that). Look for a loop that never ends or a loop over every element."
        )
    if isinstance(err, (SystemExit, KeyboardInterrupt)):
        return (
            f"✗ {name}: your function was interrupted ({type(err).__name__}); nothing was checked."
        )
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
    time_limit: float | None = ...,
) -> CheckResult:
    """Call `student_fn` and `reference` on each seeded case; print one line; never raise.

    On a mismatch, the student's output is compared with each known mistake: a match gives
    that mistake's hint, otherwise the generic `hint`. Each call of `student_fn` may take
    `time_limit` seconds (None: no limit; default: `set_time_limit`'s value, 5 s); SystemExit
    and KeyboardInterrupt raised by it are reported as a failed check rather than ending the cell.
    """
    if time_limit is ...:
        time_limit = _settings["time_limit"]
    if time_limit is not None and (isinstance(time_limit, bool) or not time_limit > 0):
        raise ValueError(f"expected time_limit > 0 seconds or None, got {time_limit!r}")
    if not callable(student_fn):
        result = CheckResult(name, False, f"✗ {name}: expected a function, got {student_fn!r}.")
    else:
        result = _run_cases(name, student_fn, reference, cases, compare, mistakes, hint, time_limit)
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
    time_limit: float | None,
) -> CheckResult:
    for number, case in enumerate(cases, start=1):
        with torch.no_grad():
            expected = reference(**_clone(case))
        try:
            with _time_limit(time_limit):
                got = student_fn(**_clone(case))
        # A student's bug, loop or exit() must never stop the notebook.
        except (Exception, SystemExit, KeyboardInterrupt) as err:
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
