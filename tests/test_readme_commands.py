"""The README's examples are what the code accepts: every `seqrec-fast` command line in its bash
blocks parses, a `train` line's options make a valid configuration, and its YAML example is a
valid config file."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from seqrec_fast.cli import build_parser
from seqrec_fast.train.commands import _overrides
from seqrec_fast.train.config import build_config

README = Path(__file__).resolve().parents[1] / "README.md"
BACKBONES = ("sasrec", "bert4rec", "nextitnet", "gru4rec", "stosa")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def _command_lines() -> list[str]:
    lines = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            if not line.startswith("seqrec-fast "):
                continue
            # The documented protocol command names its backbone M: check it with each one.
            lines += [line.replace("--model M ", f"--model {m} ") for m in BACKBONES] if "--model M " in line else [line]
    return lines


COMMANDS = _command_lines()


def test_readme_has_examples():
    assert len(COMMANDS) >= 8 and _blocks("yaml")


@pytest.mark.parametrize("line", COMMANDS)
def test_readme_command_parses(line):
    args = build_parser().parse_args(shlex.split(line)[1:])
    if args.command == "train":
        config = build_config(overrides=_overrides(args))
        assert config.model.name == args.model


def test_readme_yaml_config_is_valid(tmp_path):
    (path := tmp_path / "config.yaml").write_text(_blocks("yaml")[0])
    config = build_config(path)
    assert config.model.name == "sasrec" and config.batch_size == 256
