"""The README is the contract's documentation: it must not drift from the code."""

from __future__ import annotations

from pathlib import Path

from shared.cli import SUBCOMMANDS
from shared.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [
        f"PORTFOLIO_{name.upper()}"
        for name in Settings.model_fields
        if f"`PORTFOLIO_{name.upper()}`" not in README
    ]
    assert missing == []


def test_every_command_is_documented() -> None:
    assert [name for name in SUBCOMMANDS if f"`portfolio {name}" not in README] == []


def test_readme_opens_with_the_two_commands() -> None:
    first_block = README.split("```")[1]
    assert "make run" in first_block
    assert "make test" in first_block
