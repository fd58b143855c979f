"""The experiment directory holds everything decoding needs."""

import json

import pytest
import yaml

from asrkit.text.registry import load_tokenizer, train_tokenizer
from asrkit.training.distributed import DistributedContext
from asrkit.training.experiment import changed_keys, prepare_experiment, write_config


def test_exp_dir_gets_config_tokenizer_and_cmvn(corpus, tmp_path):
    exp = tmp_path / "exp"
    saved = prepare_experiment(corpus.config(exp), DistributedContext())
    assert not (exp / "config.yaml").exists()
    write_config(saved, DistributedContext())
    on_disk = yaml.safe_load((exp / "config.yaml").read_text())
    assert on_disk == saved
    assert saved["vocab_size"] == load_tokenizer(exp / "tokenizer").vocab_size == 27
    assert saved["tokenizer"]["dir"] == str(exp.resolve() / "tokenizer")
    assert saved["data"]["cmvn"] == str(exp.resolve() / "cmvn.json")
    assert json.loads((exp / "cmvn.json").read_text()) == json.loads(corpus.cmvn.read_text())
    assert saved["data"]["train"] == str(corpus.train.resolve())


def test_another_tokenizer_in_the_same_exp_dir_is_refused(corpus, tmp_path):
    exp = tmp_path / "exp"
    prepare_experiment(corpus.config(exp), DistributedContext())
    other = tmp_path / "other_tok"
    train_tokenizer(["zz yy"], "char", None).save(other)
    with pytest.raises(ValueError, match="another tokenizer"):
        prepare_experiment(corpus.config(exp, f"tokenizer.dir={other}"), DistributedContext())


def test_changed_keys():
    assert changed_keys({"a": 1, "b": {"c": 2, "d": 3}}, {"a": 1, "b": {"c": 5}, "e": 0}) == \
        ["b.c", "b.d", "e"]

