"""Datasets in their published formats, task selection, and the visible examples."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from agent.sandbox import SandboxLimits, run_python
from benchmarks.coding.datasets import DatasetError, doctest_examples, load_dataset, select_tasks
from benchmarks.coding.execution import execute

MBPP_RECORD = {  # mbpp.jsonl as published
    "task_id": 2, "text": "Write a function to find the shared elements from the given two lists.",
    "code": "def similar_elements(test_tup1, test_tup2):\r\n  res = tuple(set(test_tup1) & set(test_tup2))\r\n"
            "  return (res) ",
    "test_list": ["assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))",
                  "assert set(similar_elements((1, 2, 3, 4),(5, 4, 3, 7))) == set((3, 4))"],
    "test_setup_code": "", "challenge_test_list": [],
}
SANITIZED_RECORD = {  # sanitized-mbpp.json (a JSON array)
    "source_file": "x", "task_id": 17, "prompt": "Write a function that returns the perimeter of a square.",
    "code": "def square_perimeter(a):\n  return 4*a", "test_imports": ["import math"],
    "test_list": ["assert square_perimeter(10)==40", "assert math.isclose(square_perimeter(2.5), 10.0)"],
}
HUMANEVAL_PLUS_RECORD = {  # evalplus HumanEvalPlus.jsonl
    "task_id": "HumanEval/53", "entry_point": "add", "atol": 0,
    "prompt": 'def add(x: int, y: int):\n    """Add two numbers x and y\n    >>> add(2, 3)\n    5\n    """\n',
    "canonical_solution": "    return x + y\n", "test": "", "contract": "",
    "base_input": [[0, 1], [5, 7]], "plus_input": [[-2, 10**20], [0.5, 0.25]],
}
MBPP_PLUS_RECORD = {  # evalplus MbppPlus.jsonl; task 2's inputs are tuples
    "task_id": "Mbpp/2", "entry_point": "similar_elements", "atol": 0,
    "prompt": '"""\nWrite a function to find the shared elements from the given two lists.\n'
              'assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))\n"""\n',
    "canonical_solution": "def similar_elements(test_tup1, test_tup2):\n"
                          "  return tuple(sorted(set(test_tup1) & set(test_tup2)))\n",
    "assertion": "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))\n",
    "base_input": [[[3, 4, 5, 6], [5, 7, 4, 10]]], "plus_input": [[[1, 2], [2, 3]]],
}


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def test_humaneval_ships_with_the_package() -> None:
    tasks = load_dataset("humaneval")
    assert len(tasks) == 164 and tasks[0].task_id == "HumanEval/0"
    assert tasks[0].examples == ("assert has_close_elements([1.0, 2.0, 3.0], 0.5) == False",
                                 "assert has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3) == True")
    assert sum(bool(task.examples) for task in tasks) > 100


def test_mbpp_is_not_bundled_and_says_what_to_do() -> None:
    with pytest.raises(DatasetError, match="--dataset path/to/mbpp.jsonl"):
        load_dataset("mbpp")


@pytest.mark.parametrize("selection, expected", [
    ("HumanEval/7,HumanEval/2", ["HumanEval/7", "HumanEval/2"]),
    ("3-5,1", ["HumanEval/3", "HumanEval/4", "HumanEval/5", "HumanEval/1"]),
    ("2,HumanEval/2", ["HumanEval/2"]),
])
def test_select_by_ids_and_ranges(selection: str, expected: list[str]) -> None:
    assert [task.task_id for task in select_tasks(load_dataset("humaneval"), selection)] == expected


def test_random_selection_is_seeded_and_in_dataset_order() -> None:
    tasks = load_dataset("humaneval")
    first, again, other = (select_tasks(tasks, "random:20", seed) for seed in (1, 1, 2))
    assert first == again != other and len(first) == 20
    assert [tasks.index(task) for task in first] == sorted(tasks.index(task) for task in first)


@pytest.mark.parametrize("selection", ["HumanEval/999", "160-170", "random:0", "random:200", "random:x", "first"])
def test_bad_selections_are_explained(selection: str) -> None:
    with pytest.raises(DatasetError):
        select_tasks(load_dataset("humaneval"), selection)


@pytest.mark.parametrize("records, name", [
    ([MBPP_RECORD], "mbpp.jsonl"), ([SANITIZED_RECORD], "sanitized-mbpp.json"),
    ([HUMANEVAL_PLUS_RECORD], "HumanEvalPlus.jsonl.gz"), ([MBPP_PLUS_RECORD], "MbppPlus.jsonl"),
])
def test_published_formats_load_and_their_references_pass(tmp_path: Path, records: list[dict], name: str) -> None:
    path = tmp_path / name
    if name.endswith(".json"):
        path.write_text(json.dumps(records))
    elif name.endswith(".gz"):
        with gzip.open(path, "wt") as stream:
            stream.writelines(json.dumps(record) + "\n" for record in records)
    else:
        write_jsonl(path, records)
    (task,) = load_dataset(str(path))
    assert execute(task, task.reference, SandboxLimits()).result == "passed"
    assert execute(task, task.reference.replace("&", "|").replace("x + y", "x - y").replace("4*a", "5*a"),
                   SandboxLimits()).result == "failed"
    assert task.examples and "FAILED" not in run_python(task.example_program(task.reference)).stdout


def test_mbpp_prompt_shows_one_test_and_hides_the_rest(tmp_path: Path) -> None:
    (task,) = load_dataset(str(write_jsonl(tmp_path / "mbpp.jsonl", [MBPP_RECORD])))
    assert (task.task_id, task.entry_point, task.code_prefix) == ("Mbpp/2", "similar_elements", "")
    assert MBPP_RECORD["test_list"][0] in task.prompt and MBPP_RECORD["test_list"][1] not in task.prompt
    assert all(test in task.test for test in MBPP_RECORD["test_list"])


def test_unknown_records_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="neither HumanEval, MBPP nor evalplus"):
        load_dataset(str(write_jsonl(tmp_path / "odd.jsonl", [{"question": "?"}])))
    with pytest.raises(DatasetError, match="no such dataset"):
        load_dataset(str(tmp_path / "missing.jsonl"))


def test_docstring_examples_in_several_styles() -> None:
    prompt = ('def f(x):\n    """\n    >>> f(2)\n    4\n    f(3) ==> 9\n    f([1]) -> [1]\n'
              '    f("a") should return "aa".\n    f(n) == f(n-1) + 1\n    f(1) == true\n    """\n')
    assert doctest_examples(prompt, "f") == ("assert f(2) == 4", "assert f(3) == 9", "assert f([1]) == [1]",
                                             'assert f("a") == "aa"')
