"""Config loading: YAML, then --key value overrides; errors name the key and list valid values."""

from __future__ import annotations

import re

import pytest

from seqrec_fast.cli import main
from seqrec_fast.train.config import ConfigError, TrainConfig, build_config, to_yaml


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  name: nextitnet\n  dilations: [1, 4]\nlr: 0.01\nhidden_size: 32\nfilter_history: false\n")
    config = build_config(path, {"lr": "3e-4", "num-layers": "3"})
    assert config.model.name == "nextitnet" and config.model.dilations == (1, 4)
    assert config.lr == 3e-4 and config.model.hidden_size == 32 and config.model.num_layers == 3
    assert config.filter_history is False
    # the resolved config round-trips
    resolved = tmp_path / "resolved.yaml"
    resolved.write_text(to_yaml(config))
    assert build_config(resolved) == config


@pytest.mark.parametrize("key, value, message", [
    ("lr", "fast", "config key 'lr': expected a number, got 'fast'"),
    ("epochs", "2.5", "config key 'epochs': expected an integer"),
    ("filter_history", "maybe", "config key 'filter_history': expected true or false"),
    ("model", "sasrek", "valid values: bert4rec, gru4rec, nextitnet, sasrec, stosa"),
    ("loss", "softmax", "config key 'loss': unknown value 'softmax'"),
    ("hidden_sise", "64", "unknown option 'hidden_sise' (did you mean hidden_size?)"),
    ("batch_size", "0", "config key 'batch_size': expected a positive integer"),
    ("min_epochs", "-1", "config key 'min_epochs': expected a non-negative integer"),
    # every numeric key is finite and in its range (issue 16: --lr inf, --n-negatives -5 were accepted)
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
def test_bad_values_name_the_key(key, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config(overrides={key: value})


@pytest.mark.parametrize("text, message", [
    ("num_heads: two\n", "bad.yaml: config key 'num_heads': expected an integer"),
    ("lr: .inf\n", "bad.yaml: config key 'lr': expected a finite number"),
])
def test_yaml_errors_name_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config(path)


def test_ordinary_values_at_the_range_edges_pass():
    config = build_config(overrides={"lr": "3e-4", "n_negatives": "0", "dropout": "0", "beta1": "0", "gbce_t": "1"})
    assert config.lr == 3e-4 and config.n_negatives == 0


def test_cli_refuses_an_out_of_range_value_before_training(tmp_path, capsys):
    assert main(["train", "--data", "synthetic:tiny", "--out", str(tmp_path / "run"), "--lr", "inf"]) == 2
    assert "config key 'lr': expected a finite number" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_loss_and_model_must_fit_together():
    with pytest.raises(ConfigError, match="'stosa' works with model stosa only"):
        build_config(overrides={"model": "sasrec", "loss": "stosa"})
    assert build_config(overrides={"model": "stosa"}).resolved_loss() == "stosa"
    assert build_config(overrides={"loss": "gbce"}).resolved_negatives() == 256


def test_cli_unknown_option_lists_the_valid_ones(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", "synthetic:tiny", "--out", "x", "--hiden-size", "8"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown option 'hiden_size'" in err and "valid options:" in err and "hidden_size" in err


def test_cli_unknown_model_lists_the_valid_ones(capsys, tmp_path):
    assert main(["train", "--model", "transformer", "--data", "synthetic:tiny", "--out", str(tmp_path)]) == 2
    assert "valid values: bert4rec, gru4rec, nextitnet, sasrec, stosa" in capsys.readouterr().err


def test_dropout_defaults_come_from_the_backbone():
    assert (build_config(overrides={"model": "sasrec"}).model.dropout) == 0.5  # RecBole's SASRec
    assert (build_config(overrides={"model": "nextitnet"}).model.dropout) == 0.0
    assert build_config(overrides={"model": "sasrec", "dropout": "0.1"}).model.dropout == 0.1


def test_training_windows_default_to_the_backbones():
    sasrec = build_config(overrides={"model": "sasrec"})
    assert (sasrec.window, sasrec.loader_stride()) == ("stride", 5)  # written resolved to config.yaml
    assert build_config(overrides={"model": "bert4rec"}).window == "stride"
    assert build_config(overrides={"model": "sasrec", "window": "sliding"}).loader_stride() is None
    assert build_config(overrides={"model": "sasrec", "max_len": "3"}).loader_stride() == 3  # capped
    assert build_config(overrides={"model": "sasrec"}, default_window="sliding").window == "sliding"
    assert build_config(overrides={"model": "sasrec", "window": "last"}, default_window="sliding").window == "last"
    unresolved = TrainConfig()  # built in code, not through build_config
    assert unresolved.window == "" and unresolved.resolved_window() == "stride"
