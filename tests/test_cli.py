"""The `seqrec-fast` command: every command has --help, and reporting commands speak JSON."""

from __future__ import annotations

import argparse
import json

import pytest

from seqrec_fast import __version__
from seqrec_fast.cli import build_parser, main


def _all_command_paths(parser: argparse.ArgumentParser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _all_command_paths(sub, (*prefix, name))


def test_every_command_has_help(capsys):
    paths = list(_all_command_paths(build_parser()))
    assert ("doctor",) in paths and ("ops", "build") in paths and ("quickstart",) in paths
    for path in paths:
        with pytest.raises(SystemExit) as exit_info:
            main([*path, "--help"])
        assert exit_info.value.code == 0
        assert "usage: seqrec-fast " + " ".join(path) in capsys.readouterr().out


def test_version_json(capsys):
    assert main(["version", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"seqrec_fast": __version__}


def test_unknown_command_lists_the_valid_ones(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["trian"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'trian'" in err and "doctor" in err


def _options_of(parser: argparse.ArgumentParser):
    return [action for action in parser._actions
            if action.option_strings and action.help is not argparse.SUPPRESS and "--help" not in action.option_strings]


def _subparser(parser: argparse.ArgumentParser, *path: str) -> argparse.ArgumentParser:
    for name in path:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    return parser


@pytest.mark.parametrize("path", [("train",), ("search", "adt")])
def test_every_training_and_search_option_shows_help_and_default(path):
    options = _options_of(_subparser(build_parser(), *path))
    assert len(options) > 40
    flags = {"--config", "--resume", "--overwrite", "--json"}  # switches and paths without a default
    for action in options:
        assert action.help, action.option_strings
        if not flags & set(action.option_strings):
            assert "(default: " in action.help, action.option_strings


def test_search_help_lists_the_registered_algorithms(capsys):
    from seqrec_fast.algorithms import registry

    with pytest.raises(SystemExit):
        main(["search", "--help"])
    out = capsys.readouterr().out
    for name in registry.names():
        assert name in out and registry.get(name).summary[:30] in " ".join(out.split())
