"""Finding and loading the files of a policy directory."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from hoopd.policy.errors import PolicyError
from hoopd.policy.parse import parse_policy_file
from hoopd.policy.policy import Policy
from hoopd.policy.rules import DefaultsEntry, MaskRule, Rule
from hoopd.policy.yamlread import Problems, Reader, compose_file

POLICY_SUFFIXES: Final = (".yaml", ".yml")
TEST_SUFFIXES: Final = (".test.yaml", ".test.yml")


def policy_files(directory: Path) -> list[Path]:
    """The policy files of a directory, sorted by name: every ``*.yaml`` and ``*.yml``
    directly in it except test files (``*.test.yaml``) and hidden files.
    Subdirectories are not read, so several policies can sit side by side."""
    return [
        path
        for path in _files(directory)
        if path.name.endswith(POLICY_SUFFIXES) and not path.name.endswith(TEST_SUFFIXES)
    ]


def case_files(directory: Path) -> list[Path]:
    """The test-case files (``*.test.yaml``, ``*.test.yml``) directly in a directory."""
    return [path for path in _files(directory) if path.name.endswith(TEST_SUFFIXES)]


def _files(directory: Path) -> list[Path]:
    return sorted(
        (p for p in directory.iterdir() if not p.name.startswith(".") and p.is_file()),
        key=lambda p: p.name,
    )


def load_policy(directory: Path) -> Policy:
    """Load and validate every policy file in ``directory``.

    Returns a ready :class:`Policy`, or raises :class:`PolicyError` listing every
    problem found in every file, each as ``file:line: problem``. Rule names must be
    unique across the directory. Rules are taken in file-name order, then in the
    order each file lists them.
    """
    directory = Path(directory)
    problems = Problems()
    try:
        files = policy_files(directory)
    except OSError as exc:
        raise PolicyError([f"{directory}: cannot read the directory: {exc.strerror}"]) from None
    if not files:
        raise PolicyError(
            [f"{directory}: no policy files (*.yaml or *.yml){_subdirectories(directory)}"]
        )
    rules: list[Rule | MaskRule] = []
    defaults: list[DefaultsEntry] = []
    first_defined: dict[str, str] = {}
    for path in files:
        known_problems = len(problems.lines)
        root = compose_file(path, problems)
        if root is None and len(problems.lines) > known_problems:
            continue  # unreadable or not YAML: already reported
        parsed = parse_policy_file(Reader(str(path), problems), root)
        for name, where in parsed.names:
            if name in first_defined:
                problems.add(where, f"rule name {name!r} is already used at {first_defined[name]}")
            else:
                first_defined[name] = where
        rules.extend(parsed.rules)
        defaults.extend(parsed.defaults)
    if problems.lines:
        raise PolicyError(problems.lines)
    return Policy(rules, defaults, files)


def _subdirectories(directory: Path) -> str:
    """A hint for a directory whose policies are one level down, as in ``policies/``."""
    try:
        below = sorted(p.name for p in directory.iterdir() if p.is_dir() and policy_files(p))
    except OSError:
        return ""
    if not below:
        return ""
    return f"; subdirectories are separate policies and are not read ({', '.join(below)})"
