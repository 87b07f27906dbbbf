"""The README's and docs' claims that can be checked: the make targets and tools they name exist, their relative
links lead to files (and headings) that exist, no tracked file points outside the repository, the README stays
short, and so do module docstrings."""

import ast
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_LIMIT = 12_000  # bytes: the README says what the project is and how to start; the rest lives in docs/
DOCSTRING_LIMIT = 10  # lines: a module's docstring says what it does and how it is run; the rest lives in docs/
OUTSIDE = "../" + "shared/"  # a folder beside the repository, which a user's clone does not have (split: not in here)


def documents(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


# Make targets


RULE = re.compile(r"^([^\s#:=][^:=#]*?)\s*&?::?(?!=)")
INCLUDE = re.compile(r"^-?include\s+(.+)$")
TARGET = re.compile(r"[a-z][a-z0-9-]*")


def makefile_targets(makefile: Path) -> set[str]:
    """The plain targets (lowercase names) of a Makefile and the files it includes, read from their rules."""
    targets = set()
    for line in makefile.read_text().splitlines():
        if line.startswith("\t"):
            continue
        if include := INCLUDE.match(line):
            for name in include.group(1).split():
                targets |= makefile_targets(makefile.parent / name)
        elif rule := RULE.match(line):
            targets |= {name for name in rule.group(1).split() if TARGET.fullmatch(name)}
    return targets


CODE_BLOCK = re.compile(r"^```.*?^```", re.S | re.M)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
COMMAND = re.compile(r"(?:^|&&|;|\|)\s*(?:\$\s+)?make((?:[ \t]+\S+)+)")


def code_lines(markdown: str) -> list[str]:
    """The code of a markdown text: each line of its fenced blocks, and each inline code span."""
    lines = [line for block in CODE_BLOCK.findall(markdown) for line in block.splitlines()[1:-1]]
    return lines + CODE_SPAN.findall(markdown)


def named_targets(markdown: str) -> set[str]:
    """The targets of the `make ...` commands in a markdown text's code (variables and options skipped): where make
    starts a code span or a line of a code block, or follows &&, ; or |."""
    named = set()
    for code in code_lines(markdown):
        for match in COMMAND.finditer(code):
            for word in match.group(1).split():
                if "=" in word or word.startswith(("-", "[")):
                    continue
                if target := TARGET.match(word):  # `make lab`'s folder: lab
                    named.add(target.group())
                break
    return named


def unknown_targets(markdown: str, targets: set[str]) -> set[str]:
    return named_targets(markdown) - targets


def test_finds_targets_in_rules_and_included_files_only(tmp_path):
    (tmp_path / "Makefile").write_text(
        "PY := python\nX ?= 1\n.PHONY: a\nalpha: setup  ## text: with a colon\n\techo b: c\n"
        "$(PY)/x: y\nbeta gamma &: z\ninclude more.mk\n"
    )
    (tmp_path / "more.mk").write_text("delta:\n\t$(MAKE) epsilon\n")
    assert makefile_targets(tmp_path / "Makefile") == {"alpha", "beta", "gamma", "delta"}


def test_finds_the_targets_a_text_names_in_code_only():
    text = (
        "Run `make demo`, then `make push-train EXP=x`, `make [ROWS=1] sample`, `make KERNEL=k run`.\n"
        "To make sure, `make` alone and make nothing here; `make lab`'s folder, `make ... BUILD_DIR=`.\n"
        "```\nmake test   # comment\n$(MAKE) inner\ncd x && make build\nprose: the make targets (`make lock`)\n```\n"
    )
    assert named_targets(text) == {"demo", "push-train", "sample", "run", "lab", "test", "build", "lock"}
    assert unknown_targets("`make no-such-target`", {"demo"}) == {"no-such-target"}


def test_every_make_target_the_docs_name_exists():
    targets = makefile_targets(ROOT / "Makefile")
    assert {"demo", "test", "push-inference", "train-hours"} <= targets  # the includes were read
    unknown = {str(path.relative_to(ROOT)): unknown_targets(path.read_text(), targets) for path in documents()}
    assert {name: found for name, found in unknown.items() if found} == {}, "no such make targets"


# Tools


TOOL_PATH = re.compile(r"\btools/[\w/]+\.\w+")
TOOL_MODULE = re.compile(r"\btools(?:\.[a-z_]\w*)+")


def missing_tools(markdown: str, root: Path = ROOT) -> set[str]:
    """The tools/ files and tools.<package>.<module> names (or a module's attribute) a text names that do not exist."""
    missing = {path for path in TOOL_PATH.findall(markdown) if not (root / path).is_file()}
    for name in TOOL_MODULE.findall(markdown):
        parts = name.split(".")
        places = [root.joinpath(*parts).with_suffix(".py"), root.joinpath(*parts) / "__init__.py"]
        places.append(root.joinpath(*parts[:-1]).with_suffix(".py"))  # an attribute of a module
        if not any(place.is_file() for place in places):
            missing.add(name)
    return missing


def test_finds_tools_that_do_not_exist(tmp_path):
    (tmp_path / "tools" / "kaggle").mkdir(parents=True)
    (tmp_path / "tools" / "kaggle" / "kernels.py").write_text("")
    text = (
        "`python -m tools.kaggle.kernels`, tools.kaggle.kernels.push, tools/kaggle/kernels.py; tools.kaggle.gone and "
    )
    assert missing_tools(text + "`tools/delivery.py` or tools.delivery", tmp_path) == {
        "tools.kaggle.gone",
        "tools/delivery.py",
        "tools.delivery",
    }


def test_every_tool_the_docs_name_exists():
    texts = [*documents(), ROOT / "Makefile", *sorted((ROOT / "make").glob("*.mk"))]
    missing = {str(path.relative_to(ROOT)): missing_tools(path.read_text()) for path in texts}
    assert {name: found for name, found in missing.items() if found} == {}, "no such tools"


# Links


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a markdown text's headings: lowercase, punctuation dropped, spaces as hyphens."""
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", CODE_BLOCK.sub("", markdown), re.M):
        anchor = re.sub(r"[^\w\- ]", "", heading.lower().replace("`", "")).replace(" ", "-")
        anchors.add(anchor)
    return anchors


def broken_links(path: Path) -> list[str]:
    """The relative links of a markdown file whose file, or heading within a markdown file, does not exist."""
    markdown = path.read_text()
    broken = []
    for target in LINK.findall(CODE_SPAN.sub("", CODE_BLOCK.sub("", markdown))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file) if file else path
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked.read_text()):
            broken.append(target)
    return broken


def test_finds_links_to_missing_files_and_headings(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## The `make run` step: details\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md) [ok](other.md#the-make-run-step-details) [ok](#here) [web](https://example.com/x.md)\n"
        "## Here\n[missing](missing.md) [no heading](other.md#nowhere) [no heading here](#there)\n"
        "`[in code](missing-too.md)`\n"
    )
    assert broken_links(page) == ["missing.md", "other.md#nowhere", "#there"]


def test_every_relative_link_of_the_docs_leads_somewhere():
    broken = {str(path.relative_to(ROOT)): broken_links(path) for path in documents()}
    assert {name: links for name, links in broken.items() if links} == {}, "these links lead nowhere"


# Pointers outside the repository


def pointing_outside(files: dict[str, bytes]) -> list[str]:
    return sorted(name for name, content in files.items() if OUTSIDE.encode() in content)


def tracked_files(root: Path = ROOT) -> dict[str, bytes]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: no list of tracked files")
    names = [name for name in listed.decode().split("\0") if name]
    return {name: (root / name).read_bytes() for name in names if (root / name).is_file()}


def test_finds_a_file_that_points_outside():
    files = {"a.md": b"see docs/delivery.md", "b.txt": b"see " + OUTSIDE.encode() + b"docs/X.md"}
    assert pointing_outside(files) == ["b.txt"]


def test_no_tracked_file_points_outside_the_repository():
    files = tracked_files()
    assert "README.md" in files
    assert pointing_outside(files) == [], "a clone has no folder beside it: say it in docs/ with its public source"


# The README's size


def too_large(path: Path, limit: int = README_LIMIT) -> bool:
    return path.stat().st_size >= limit


def test_a_long_readme_is_found(tmp_path):
    (tmp_path / "README.md").write_text("x" * README_LIMIT)
    assert too_large(tmp_path / "README.md")
    (tmp_path / "README.md").write_text("x" * (README_LIMIT - 1))
    assert not too_large(tmp_path / "README.md")


def test_the_readme_stays_short():
    readme = ROOT / "README.md"
    assert "make demo" in readme.read_text() and "make test" in readme.read_text()
    assert not too_large(readme), f"README.md has {readme.stat().st_size} bytes: move reference to docs/"


# Module docstrings


def python_modules(root: Path = ROOT) -> list[Path]:
    """build.py and every module of lib/ and tools/."""
    modules = [*(root / "lib").rglob("*.py"), *(root / "tools").rglob("*.py")]
    return [root / "build.py", *sorted(path for path in modules if "__pycache__" not in path.parts)]


def long_docstrings(paths: list[Path], root: Path = ROOT, limit: int = DOCSTRING_LIMIT) -> dict[str, int]:
    """The files whose module docstring has more than `limit` lines, with its number of lines."""
    found = {}
    for path in paths:
        lines = len((ast.get_docstring(ast.parse(path.read_text())) or "").splitlines())
        if lines > limit:
            found[str(path.relative_to(root))] = lines
    return found


def test_finds_a_long_module_docstring(tmp_path):
    (tmp_path / "long.py").write_text('"""' + "\n".join(["line"] * 11) + '"""\n\nX = 1\n')
    (tmp_path / "short.py").write_text('"""' + "\n".join(["line"] * 10) + '\n"""\n')
    (tmp_path / "none.py").write_text('X = """not a docstring\n' + "\n" * 20 + '"""\n')
    paths = [tmp_path / name for name in ["long.py", "short.py", "none.py"]]
    assert long_docstrings(paths, tmp_path) == {"long.py": 11}


def test_every_module_docstring_is_short():
    modules = python_modules()
    assert ROOT / "build.py" in modules and ROOT / "tools" / "kaggle" / "delivery.py" in modules
    found = long_docstrings(modules)
    listed = ", ".join(f"{name} ({lines} lines)" for name, lines in found.items())
    assert found == {}, (
        f"over {DOCSTRING_LIMIT} lines: {listed}; say what the module does and how it is run, the rest in docs/"
    )
