"""The contract every exercise checker keeps, as tests a chapter's test module adopts.

    test_a, test_b, test_c = checker_contract_tests(CASES)

CASES maps a name to (checker, reference, [(wrong function, words its hint must contain)]).
"""

import pytest
import torch


def _matmul_crash(**kwargs):
    # A student's shape bug: torch raises RuntimeError from inside the student's function.
    return next(iter(kwargs.values())).float() @ torch.ones(999, 999)


def checker_contract_tests(cases, crash=_matmul_crash, error="RuntimeError"):
    """Three tests over `cases`: the reference passes (and the printed line is the message),
    each seeded wrong function fails with its hint, and an unfinished stub or a crash is
    reported without raising (`crash` must raise `error`)."""

    @pytest.mark.parametrize("name", cases)
    def test_checker_passes_the_reference(name, capsys):
        checker, reference, _ = cases[name]
        result = checker(reference)
        assert result.passed, result.message
        assert capsys.readouterr().out.strip() == result.message

    @pytest.mark.parametrize(
        ("name", "index"),
        [(name, i) for name, (_, _, wrong) in cases.items() for i in range(len(wrong))],
    )
    def test_checker_fails_a_wrong_implementation_with_its_hint(name, index):
        checker, _, wrong = cases[name]
        fn, words = wrong[index]
        result = checker(fn)
        assert not result.passed
        assert "Hint:" in result.message
        assert words in result.message, result.message

    @pytest.mark.parametrize("name", cases)
    def test_checker_reports_not_implemented_and_crashes_without_raising(name):
        checker, _, _ = cases[name]

        def stub(**kwargs):
            raise NotImplementedError

        assert "not implemented yet" in checker(stub).message
        crashed = checker(crash)
        assert not crashed.passed and error in crashed.message

    return (
        test_checker_passes_the_reference,
        test_checker_fails_a_wrong_implementation_with_its_hint,
        test_checker_reports_not_implemented_and_crashes_without_raising,
    )
