"""Code extraction from messy model answers."""

from __future__ import annotations

from benchmarks.coding.prompts import extract_code

SOLUTION = "def add(a, b):\n    return a + b\n"


def test_fenced_block_with_prose_around_it() -> None:
    answer = f"Sure! Here is the function:\n\n```python\n{SOLUTION}```\n\nIt adds the two numbers."
    assert extract_code(answer, "add", continues_prompt=False) == SOLUTION


def test_the_block_that_defines_the_function_wins() -> None:
    answer = ("You can call it like this:\n```python\nprint(add(1, 2))\n```\nand here is the code:\n"
              f"```Python\nimport math\n\n{SOLUTION}```\n```\n>>> add(1, 2)\n3\n```")
    assert extract_code(answer, "add", continues_prompt=False) == f"import math\n\n{SOLUTION}"


def test_example_calls_prints_and_main_blocks_are_dropped() -> None:
    answer = (f"```py\nfrom typing import List\nLIMIT = 10\n\n{SOLUTION}\nprint(add(2, 3))\nassert add(1, 1) == 2\n"
              "result = add(4, 5)\nif __name__ == '__main__':\n    print(input())\n```")
    assert extract_code(answer, "add", continues_prompt=False) == f"from typing import List\n\nLIMIT = 10\n\n{SOLUTION}"


def test_helpers_decorators_and_classes_are_kept() -> None:
    answer = ("```python\nimport functools\n\nclass Box:\n    pass\n\ndef _helper(x):\n    return x\n\n"
              "@functools.cache\ndef add(a, b):\n    return _helper(a) + b\n```")
    code = extract_code(answer, "add", continues_prompt=False)
    assert code.count("def ") == 2 and "@functools.cache\ndef add" in code and "class Box" in code


def test_bare_code_between_prose() -> None:
    answer = f"The answer is simple.\n{SOLUTION}\nThis function returns the sum of a and b."
    assert extract_code(answer, "add", continues_prompt=False) == SOLUTION


def test_unclosed_fence_cut_off_mid_line() -> None:
    answer = f"```python\n{SOLUTION}\ndef unused():\n    return [1, 2,"
    assert extract_code(answer, "add", continues_prompt=False) == SOLUTION


def test_body_only_answer_continues_the_prompt() -> None:
    assert extract_code("```python\n    return a + b\n```", "add", continues_prompt=True) == "    return a + b\n"
    assert extract_code("return a + b", "add", continues_prompt=True) == "    return a + b\n"


def test_broken_code_is_kept_for_the_tests_to_report() -> None:
    answer = "```python\ndef add(a, b)\n    return a + b\n```"
    assert extract_code(answer, "add", continues_prompt=False) == "def add(a, b)\n    return a + b\n"


def test_no_code_at_all() -> None:
    assert extract_code("I cannot help with that.", "add", continues_prompt=False) == "I cannot help with that.\n"
