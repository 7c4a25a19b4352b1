"""`params.check` turns a job's parameters and a runbook's declarations into effective values or
problems that each name the parameter; `as_environment` hands them to a process as strings.
"""

from __future__ import annotations

import pytest

from hrw_api import ParameterSpec, ParameterType
from hrw_api.params import as_environment, check, env_value

DECLARED = (
    ParameterSpec("name", ParameterType.STRING, required=True, pattern=r"[A-Z][a-z]+"),
    ParameterSpec("count", ParameterType.INTEGER, default=1),
    ParameterSpec("ratio", ParameterType.NUMBER),
    ParameterSpec("dry_run", ParameterType.BOOLEAN, default=False),
    ParameterSpec("hosts", ParameterType.ARRAY),
    ParameterSpec("extra", ParameterType.OBJECT),
    ParameterSpec("level", ParameterType.STRING, enum=("low", "high")),
)


def test_given_values_and_defaults_make_the_effective_parameters() -> None:
    effective, problems = check(DECLARED, {"name": "World", "ratio": 0.5, "hosts": ["a"], "extra": {"k": 1},
                                           "level": "high"})
    assert problems == []
    assert effective == {"name": "World", "count": 1, "ratio": 0.5, "dry_run": False, "hosts": ["a"],
                         "extra": {"k": 1}, "level": "high"}


def test_a_given_value_wins_over_the_default() -> None:
    effective, problems = check(DECLARED, {"name": "World", "count": 3, "dry_run": True})
    assert problems == []
    assert (effective["count"], effective["dry_run"]) == (3, True)


def test_optional_parameters_without_default_are_left_out() -> None:
    effective, _ = check(DECLARED, {"name": "World"})
    assert set(effective) == {"name", "count", "dry_run"}


def test_missing_required_parameter_is_named() -> None:
    _, problems = check(DECLARED, {})
    assert problems == ["parameter 'name' is required (string)"]


def test_undeclared_parameter_is_named_with_the_declared_ones() -> None:
    _, problems = check(DECLARED[:2], {"name": "World", "colour": "red"})
    assert problems == ["parameter 'colour' is not declared by the runbook (declared: count, name)"]
    _, none_declared = check((), {"x": 1})
    assert none_declared == ["parameter 'x' is not declared by the runbook (declared: none)"]


@pytest.mark.parametrize(("name", "value"), [
    ("count", "3"), ("count", 2.5), ("ratio", "0.5"), ("dry_run", "true"), ("hosts", "a,b"), ("extra", ["k"]),
    ("name", 42),
])
def test_wrong_type_is_named(name: str, value: object) -> None:
    _, problems = check(DECLARED, {"name": "World", name: value})
    assert len(problems) == 1
    assert problems[0].startswith(f"parameter {name!r} must be of type")


@pytest.mark.parametrize(("name", "value"), [("count", True), ("ratio", False), ("dry_run", 1), ("dry_run", 0)])
def test_booleans_and_integers_never_pass_for_each_other(name: str, value: object) -> None:
    _, problems = check(DECLARED, {"name": "World", name: value})
    assert len(problems) == 1 and "must be of type" in problems[0]


def test_an_integer_is_a_number() -> None:
    effective, problems = check(DECLARED, {"name": "World", "ratio": 2})
    assert problems == [] and effective["ratio"] == 2


def test_value_outside_the_enum_is_named() -> None:
    _, problems = check(DECLARED, {"name": "World", "level": "medium"})
    assert problems == ["parameter 'level' must be one of ['low', 'high'], got 'medium'"]


def test_pattern_must_match_the_whole_value() -> None:
    _, problems = check(DECLARED, {"name": "World!"})
    assert problems == ["parameter 'name' must match /[A-Z][a-z]+/, got 'World!'"]
    _, lower = check(DECLARED, {"name": "world"})
    assert len(lower) == 1


def test_a_default_of_the_wrong_type_is_reported_too() -> None:
    _, problems = check((ParameterSpec("count", ParameterType.INTEGER, default="one"),), {})
    assert problems == ["parameter 'count' must be of type integer, got str 'one'"]


def test_every_problem_is_reported_at_once() -> None:
    _, problems = check(DECLARED, {"count": "x", "level": "medium", "bogus": 1})
    assert len(problems) == 4


def test_environment_values_are_strings_and_json_for_the_rest() -> None:
    assert as_environment({"name": "World", "count": 3, "dry_run": True, "hosts": ["a", "b"], "db-host": "x"}) == {
        "HRW_PARAM_NAME": "World", "HRW_PARAM_COUNT": "3", "HRW_PARAM_DRY_RUN": "true",
        "HRW_PARAM_HOSTS": '["a","b"]', "HRW_PARAM_DB_HOST": "x",
    }
    assert env_value("$(rm -rf /)") == "$(rm -rf /)"  # verbatim: never goes through a shell
