"""The README's CLI reference is the commands' own help, regenerated after every change."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ticker_registry.cli import cli
from ticker_registry.cli.reference import END, START, render_reference, update_readme

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_holds_the_generated_cli_reference():
    text = README.read_text(encoding="utf-8")
    assert START in text and END in text, f"README.md lacks the {START} / {END} markers"
    in_readme = text.split(START, 1)[1].split(END, 1)[0].strip("\n")
    assert in_readme == render_reference(), (
        "the CLI reference in README.md is out of date (a help text, option or command "
        "changed); regenerate it with `python -m ticker_registry.cli.reference --write-readme`")


def test_every_visible_command_is_in_the_reference():
    text = render_reference()
    for name, command in cli.commands.items():
        assert (f"### `ticker-registry {name}`" in text) != command.hidden, name


def test_the_reference_does_not_depend_on_the_terminal():
    outputs = set()
    for columns in ("40", "250"):
        env = {**os.environ, "COLUMNS": columns, "LINES": "10"}
        outputs.add(subprocess.run([sys.executable, "-m", "ticker_registry.cli.reference"],
                                   env=env, capture_output=True, text=True, timeout=120,
                                   check=True).stdout)
    assert len(outputs) == 1
    assert outputs.pop().strip("\n") == render_reference()


def test_write_readme_replaces_only_what_stands_between_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# T\n\n{START}\nold\n{END}\n\n## Next\n", encoding="utf-8")
    assert update_readme(readme) is True
    assert readme.read_text(encoding="utf-8") == (
        f"# T\n\n{START}\n{render_reference()}\n{END}\n\n## Next\n")
    assert update_readme(readme) is False
