"""Every numeric option is checked when it is parsed: finite, in its range, the key named
(issue 16, finding 9: --lr inf and --n-negatives -5 were accepted)."""

from __future__ import annotations

import re

import pytest

from seqrec_fast.cli import main
from seqrec_fast.train.config import ConfigError, build_config


@pytest.mark.parametrize("key, value, message", [
    ("lr", "inf", "config key 'lr': expected a finite number, got 'inf'"),
    ("lr", "nan", "config key 'lr': expected a finite number, got 'nan'"),
    ("weight_decay", "-inf", "config key 'weight_decay': expected a finite number"),
    ("lr", "0", "config key 'lr': expected a number > 0, got 0.0"),
    ("n_negatives", "-5", "config key 'n_negatives': expected -1 (the loss's default) or an integer >= 0, got -5"),
    ("eval_negatives", "-1", "config key 'eval_negatives': expected a non-negative integer, got -1"),
    ("seed", "-3", "config key 'seed': expected a non-negative integer, got -3"),
    ("threads", "-1", "config key 'threads': expected a non-negative integer, got -1"),
    ("checkpoint_every_steps", "-2", "config key 'checkpoint_every_steps': expected a non-negative integer"),
    ("beta1", "1", "config key 'beta1': expected a number in [0, 1), got 1.0"),
    ("beta2", "-0.1", "config key 'beta2': expected a number in [0, 1)"),
    ("gbce_t", "1.5", "config key 'gbce_t': expected a number in [0, 1], got 1.5"),
    ("pvn_weight", "-1", "config key 'pvn_weight': expected a non-negative number"),
    ("dropout", "1", "config key 'dropout': expected -1 (the backbone's default) or a number in [0, 1), got 1.0"),
    ("attn_dropout", "-0.5", "config key 'attn_dropout': expected -1 (the backbone's default) or a number in [0, 1)"),
    ("mask_prob", "0", "config key 'mask_prob': expected a number in (0, 1), got 0.0"),
    ("dilations", "1,0", "config key 'dilations': expected positive integers, got (1, 0)"),
    ("clip_grad_norm", "1e400", "config key 'clip_grad_norm': expected a finite number"),
])
def test_out_of_range_values_name_the_key(key, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config(overrides={key: value})


def test_yaml_values_are_checked_too(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("lr: .inf\n")
    with pytest.raises(ConfigError, match=r"run.yaml: config key 'lr': expected a finite number"):
        build_config(path)


def test_defaults_and_ordinary_values_pass():
    config = build_config(overrides={"lr": "3e-4", "n_negatives": "0", "dropout": "0", "beta1": "0", "gbce_t": "1"})
    assert config.lr == 3e-4 and config.n_negatives == 0


def test_cli_refuses_before_training(tmp_path, capsys):
    code = main(["train", "--data", "synthetic:tiny", "--out", str(tmp_path / "run"), "--lr", "inf"])
    assert code == 2
    assert "config key 'lr': expected a finite number" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
