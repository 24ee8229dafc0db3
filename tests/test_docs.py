"""The documentation works as written: README.md and docs/*.md, read as Markdown.

1. Every line of a ```bash, ```sh or ```console block that runs one of June's programs runs: `june …` (and the
   other [project.scripts]) and `python -m <a module of this repository> …` answer `--help`, with their
   subcommands, in a fresh interpreter with exit 0, and their help names every `--option` the line uses; `make
   <target>` names a target of the Makefile. Lines that run other programs (curl, Ray's CLIs, …) are skipped by
   name (EXTERNAL, EXTERNAL_MODULES); a program on neither list fails, so that a new one is sorted, not passed over.
2. Every Markdown link to a path inside the repository leads to a file that exists, and its #anchor to a heading.
3. The README stays a front door (at most 200 lines) that links every page of docs/.

Fast: no Ray, no model, no server; the `--help` runs are started all at once. A case is named by its file, line
and command, so a failure says where to look.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_BLOCKS = {"bash", "sh", "shell", "console"}
README_MAX_LINES = 200
HELP_TIMEOUT_S = 120

# Programs the docs may show that are not June's: their lines are not run.
EXTERNAL = frozenset({
    "curl", "serve", "ray", "docker", "aws", "pip", "apt-get", "sudo", "cat", "chmod", "cd", "export", "ssh",
})
# Tools of the venv that June's docs use: checked with --help like June's own programs.
VENV_TOOLS = frozenset({"lint-imports", "pytest"})
PYTHONS = frozenset({"python", "python3", "python3.11"})
EXTERNAL_MODULES = frozenset({"pip", "venv"})  # `python -m` of these is not run either

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s<>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_WORD = re.compile(r"^[a-z][a-z0-9_-]*$")
_TRAILING_COMMENT = re.compile(r"\s+#\s.*$")


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@dataclass(frozen=True)
class Block:
    page: Path
    language: str
    lines: tuple[tuple[int, str], ...]  # (line number, text)


def fenced_blocks(page: Path) -> list[Block]:
    blocks: list[Block] = []
    fence, language, lines = None, "", []
    for number, text in enumerate(page.read_text().splitlines(), 1):
        match = _FENCE.match(text)
        if fence is None:
            if match:
                fence, language, lines = match[1], match[2].lower(), []
        elif match and match[1].startswith(fence) and not match[2]:
            blocks.append(Block(page, language, tuple(lines)))
            fence = None
        else:
            lines.append((number, text))
    return blocks


def prose_lines(page: Path) -> list[tuple[int, str]]:
    """The page's lines outside fenced code blocks."""
    in_code = {number for block in fenced_blocks(page) for number, _ in block.lines}
    lines = page.read_text().splitlines()
    fences = {n for n, text in enumerate(lines, 1) if _FENCE.match(text)}
    return [(n, text) for n, text in enumerate(lines, 1) if n not in in_code and n not in fences]


# --- 1. commands ------------------------------------------------------------------------------------------------


def _scripts() -> dict[str, str]:
    """[project.scripts]: command name -> "module:function"."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("scripts", {})


def _repository_module(name: str) -> bool:
    top = ROOT / name.split(".")[0]
    return (top / "__init__.py").is_file() or top.with_suffix(".py").is_file()


def make_targets() -> set[str]:
    targets: set[str] = set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9_.%/-]+(?:[ \t]+[A-Za-z0-9_.%/-]+)*)[ \t]*::?(?!=)", line):
            targets.update(match[1].split())
    return targets


@dataclass(frozen=True)
class Command:
    page: Path
    line: int
    text: str
    invocation: tuple[str, ...] | None = None  # the --help run, for June's programs and the venv's tools
    options: tuple[str, ...] = ()  # the --options the line uses, which the help must name
    targets: tuple[str, ...] | None = None  # for make: the targets it names (none: the default one)
    problem: str | None = None  # why the line cannot be checked

    def __str__(self) -> str:
        return f"{_relative(self.page)}:{self.line}: {_TRAILING_COMMENT.sub('', self.text)}"


def _leading_words(arguments: list[str]) -> list[str]:
    """The subcommands a line starts with (`inbox reply` of `june inbox reply 3 "…"`): its leading plain words."""
    words: list[str] = []
    for argument in arguments:
        if not _WORD.match(argument):
            break
        words.append(argument)
    return words


def _command(page: Path, number: int, text: str) -> Command | None:
    """The line as a check, or None when it runs nothing of June's (a comment, an assignment, an external program)."""
    try:
        tokens = shlex.split(text, comments=True)
    except ValueError as error:
        return Command(page, number, text, problem=f"cannot be read as a shell line: {error}")
    while tokens and _ASSIGNMENT.match(tokens[0]):
        tokens.pop(0)
    if not tokens:
        return None
    program, arguments = re.sub(r"^(?:\./)?\.venv/bin/", "", tokens[0]), tokens[1:]
    if program in EXTERNAL:
        return None
    options = tuple(sorted({token.split("=", 1)[0] for token in arguments if re.match(r"^--[a-z]", token)}))
    if program == "make":
        targets = tuple(token for token in arguments if not token.startswith("-") and "=" not in token)
        return Command(page, number, text, targets=targets)
    scripts = _scripts()
    if program in scripts:
        module, function = scripts[program].split(":")
        code = f"import sys; from {module} import {function} as main; sys.argv[0] = {program!r}; sys.exit(main())"
        help_run = (sys.executable, "-c", code, *_leading_words(arguments), "--help")
        return Command(page, number, text, help_run, options)
    if program in PYTHONS:
        if arguments[:1] != ["-m"] or len(arguments) < 2:
            return Command(page, number, text, problem="only `python -m <module>` is checked: run a module of June's")
        if arguments[1] in EXTERNAL_MODULES:
            return None
        if not _repository_module(arguments[1]):
            return Command(page, number, text, problem=f"{arguments[1]} is not a module of this repository (add it "
                                                       "to EXTERNAL_MODULES if it is meant)")
        help_run = (sys.executable, "-m", arguments[1], *_leading_words(arguments[2:]), "--help")
        return Command(page, number, text, help_run, options)
    if program in VENV_TOOLS:
        help_run = (str(Path(sys.executable).with_name(program)), *_leading_words(arguments), "--help")
        return Command(page, number, text, help_run, options)
    return Command(page, number, text, problem=f"`{program}` is neither June's program nor in EXTERNAL: sort it "
                                               "into one of them")


def shell_lines(block: Block) -> list[tuple[int, str]]:
    """The block's command lines, continuations joined (numbered by their first line); a console block's are
    those after a `$ ` prompt."""
    commands: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, text in block.lines:
        if block.language == "console" and pending is None:
            if not text.lstrip().startswith("$ "):
                continue
            text = text.lstrip()[2:]
        if pending is not None:
            number, text = pending[0], pending[1] + " " + text.strip()
        if text.rstrip().endswith("\\"):
            pending = (number, text.rstrip()[:-1])
            continue
        pending = None
        if text.strip():
            commands.append((number, text.strip()))
    return commands


def documented_commands() -> list[Command]:
    commands = []
    for page in PAGES:
        for block in fenced_blocks(page):
            if block.language in SHELL_BLOCKS:
                commands += filter(None, (_command(page, number, text) for number, text in shell_lines(block)))
    return commands


COMMANDS = documented_commands()


def _run_help(invocation: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        return subprocess.run(invocation, cwd=ROOT, capture_output=True, text=True, timeout=HELP_TIMEOUT_S,
                              env=environment)
    except subprocess.TimeoutExpired as timeout:
        return subprocess.CompletedProcess(invocation, -1, "", f"no answer within {timeout.timeout} s")


@pytest.fixture(scope="module")
def helps(request: pytest.FixtureRequest) -> dict[tuple[str, ...], subprocess.CompletedProcess[str]]:
    """Each --help the selected cases need, run once, all at the same time."""
    wanted = {item.callspec.params["command"].invocation for item in request.session.items
              if getattr(item, "originalname", "") == "test_a_documented_command_runs"
              and item.callspec.params["command"].invocation}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return dict(zip(wanted, pool.map(_run_help, wanted)))


@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_a_documented_command_runs(command: Command, helps) -> None:
    assert command.problem is None, f"{command}: {command.problem}"
    if command.targets is not None:
        missing = [target for target in command.targets if target not in make_targets()]
        assert make_targets() and not missing, f"{command}: the Makefile has no target {', '.join(missing)}"
        return
    done = helps[command.invocation]
    assert done.returncode == 0, (f"{command}: its --help ended with {done.returncode}:\n"
                                  f"{(done.stderr or done.stdout)[-2000:]}")
    help_text = done.stdout + done.stderr
    unknown = [option for option in command.options if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])",
                                                                      help_text)]
    assert not unknown, f"{command}: its help does not name {', '.join(unknown)}"


def test_a_programs_help_does_not_load_ray_serve() -> None:
    """`--help` answers in well under a second: the programs import Ray Serve (about 2 s) only in the commands that
    start or call the graph."""
    modules = sorted({run[2] for run in {c.invocation for c in COMMANDS if c.invocation} if run[1] == "-m"})
    modules += sorted({target.split(":")[0] for target in _scripts().values()})
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "print(sorted(name for name in sys.modules if name.startswith('ray.serve')))")
    done = subprocess.run((sys.executable, "-c", code), cwd=ROOT, capture_output=True, text=True,
                          timeout=HELP_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]", f"importing {modules} loads Ray Serve: {done.stdout}"


def test_the_readme_shows_how_to_run_and_test_june() -> None:
    """The parser found the README's commands: an empty list would pass every check above."""
    readme = {command.text.split("#")[0].strip() for command in COMMANDS if command.page.name == "README.md"}
    assert {"make run", "make test", "make test-fast"} <= readme, readme


# --- 2. links ---------------------------------------------------------------------------------------------------


def github_anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings: lower case, punctuation dropped, spaces as hyphens, and -1,
    -2 … after a repeated one."""
    anchors: set[str] = set()
    for _, text in prose_lines(page):
        if match := _HEADING.match(text):
            title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", match[2])  # a link's text stays, its address goes
            anchor = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
            unique, n = anchor, 0
            while unique in anchors:
                n += 1
                unique = f"{anchor}-{n}"
            anchors.add(unique)
    return anchors


@dataclass(frozen=True)
class Link:
    page: Path
    line: int
    target: str

    def __str__(self) -> str:
        return f"{_relative(self.page)}:{self.line}: {self.target}"


def repository_links() -> list[Link]:
    links = []
    for page in PAGES:
        for number, text in prose_lines(page):
            text = _CODE_SPAN.sub("", text)
            targets = [m[1] for m in _LINK.finditer(text)] + [m[1] for m in [_REFERENCE.match(text)] if m]
            links += [Link(page, number, target) for target in targets if not _SCHEME.match(target)]
    return links


LINKS = repository_links()


@pytest.mark.parametrize("link", LINKS, ids=str)
def test_a_link_leads_to_a_file_of_the_repository(link: Link) -> None:
    path, _, anchor = link.target.partition("#")
    target = (link.page.parent / unquote(path)).resolve() if path else link.page
    assert target.is_relative_to(ROOT), f"{link}: leads outside the repository"
    assert target.exists(), f"{link}: {_relative(target)} does not exist"
    if anchor and target.suffix == ".md":
        assert anchor in github_anchors(target), (f"{link}: {_relative(target)} has no heading #{anchor} "
                                                  f"(it has {', '.join(sorted(github_anchors(target)))})")


def test_links_were_found() -> None:
    assert any(link.target.startswith("docs/") for link in LINKS if link.page.name == "README.md")


# --- 3. the front door ------------------------------------------------------------------------------------------


def test_the_readme_is_short_and_links_every_page_of_docs() -> None:
    readme = ROOT / "README.md"
    lines = len(readme.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: move the detail into docs/"
    linked = {(readme.parent / link.target.partition("#")[0]).resolve() for link in LINKS if link.page == readme}
    unlinked = [_relative(page) for page in PAGES[1:] if page.resolve() not in linked]
    assert not unlinked, f"README.md links no page {', '.join(unlinked)}"
