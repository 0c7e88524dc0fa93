"""CI matrix export: GitHub `strategy.matrix` JSON, GitLab `parallel:matrix` YAML, parsed back."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest
import yaml

from envsetup.cli._ci_matrix import add_format_arguments, render_format
from envsetup.errors import EnvsetupError
from envsetup.integrations.cells import Cell, cells
from envsetup.integrations.ci_export import github, gitlab

SOME = (
    Cell("3.10", "2.5.1", "cpu"),
    Cell("3.11", "2.5.1", "cu121"),
    Cell("3.12", "2.7.0", "rocm6.2.4"),
)


def test_github_is_one_line_include_list_with_runner_and_session() -> None:
    text = github(SOME)
    assert "\n" not in text  # fits `echo "matrix=$(...)" >> "$GITHUB_OUTPUT"`
    assert json.loads(text) == {
        "include": [
            {
                "python": "3.10",
                "torch": "2.5.1",
                "variant": "cpu",
                "runner": "cpu",
                "session": "verify(python='3.10', torch='2.5.1', variant='cpu')",
            },
            {
                "python": "3.11",
                "torch": "2.5.1",
                "variant": "cu121",
                "runner": "gpu",
                "session": "verify(python='3.11', torch='2.5.1', variant='cu121')",
            },
            {
                "python": "3.12",
                "torch": "2.7.0",
                "variant": "rocm6.2.4",
                "runner": "gpu",
                "session": "verify(python='3.12', torch='2.7.0', variant='rocm6.2.4')",
            },
        ]
    }


def test_gitlab_parses_as_a_parallel_matrix_with_string_values() -> None:
    document = yaml.safe_load(gitlab(SOME, session="cells"))
    jobs = document[".envsetup-matrix"]["parallel"]["matrix"]
    assert jobs[0] == {
        "PYTHON": "3.10",  # a string, not the float 3.1
        "TORCH": "2.5.1",
        "VARIANT": "cpu",
        "RUNNER": "cpu",
        "SESSION": "cells(python='3.10', torch='2.5.1', variant='cpu')",
    }
    assert [job["RUNNER"] for job in jobs] == ["cpu", "gpu", "gpu"]


@pytest.mark.parametrize(("render", "limit"), [(github, 256), (gitlab, 200)])
def test_matrices_over_the_ci_limit_are_refused_with_a_way_out(render: Any, limit: int) -> None:
    many = [Cell("3.11", f"2.{minor}.0", "cpu") for minor in range(limit + 1)]
    with pytest.raises(EnvsetupError, match=f"{limit + 1} cells match") as caught:
        render(many)
    assert "--newest" in str(caught.value)
    assert render(many[:limit])


def test_an_empty_matrix_is_an_error_not_an_empty_job_list() -> None:
    with pytest.raises(EnvsetupError, match="no cells match"):
        github([])


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--torch")
    parser.add_argument("--python")
    parser.add_argument("--variant")
    parser.add_argument("--platform")
    add_format_arguments(parser)
    return parser.parse_args(argv)


def test_render_format_filters_the_matrices_like_the_verb() -> None:
    args = _parse("--format", "github", "--torch", ">=2.4", "--variant", "cpu", "--newest", "2")
    jobs = json.loads(render_format(args) or "")["include"]
    expected = cells(torch=">=2.4", variants="cpu", newest=2)
    assert [(j["python"], j["torch"], j["variant"]) for j in jobs] == [
        (c.python, c.torch, c.variant) for c in expected
    ]
    assert {j["runner"] for j in jobs} == {"cpu"}


def test_render_format_leaves_table_and_json_to_the_verb() -> None:
    assert render_format(_parse("--format", "json")) is None
    assert render_format(_parse()) is None
    with pytest.raises(SystemExit):
        _parse("--format", "yaml")


def test_matrix_verb_prints_the_github_matrix(capsys: pytest.CaptureFixture[str]) -> None:
    from envsetup.cli import main

    assert main(["matrix", "--format", "github", "--torch", "2.5.1", "--variant", "cpu,cuda"]) == 0
    jobs = json.loads(capsys.readouterr().out)["include"]
    expected = cells(torch="2.5.1", variants="cpu,cuda")
    assert [job["session"] for job in jobs] == [cell.session() for cell in expected]


def test_matrix_verb_prints_gitlab_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    from envsetup.cli import main

    assert main(["matrix", "--format", "gitlab", "--newest", "1", "--python", "3.12"]) == 0
    jobs = yaml.safe_load(capsys.readouterr().out)[".envsetup-matrix"]["parallel"]["matrix"]
    assert {job["PYTHON"] for job in jobs} == {"3.12"}
    assert len(jobs) == len(cells(newest=1, python="3.12"))


def test_matrix_verb_refuses_an_oversized_matrix_in_one_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from envsetup.cli import main

    assert main(["matrix", "--format", "github"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("envsetup: error: ")
    assert "at most 256 jobs" in captured.err and "hint: narrow it with --newest N" in captured.err
    assert main(["matrix", "--format", "github", "--newest", "0"]) == 2
