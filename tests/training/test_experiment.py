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



def test_a_rank_other_than_0_prints_only_its_own_warnings_and_errors(tmp_path, capsys):
    """Rank 0 prints every warning; rank 1 the ones about its own share or step (logged
    with extra every_rank) and its errors, which also reach rank 0's train.log."""
    import logging

    from asrkit.training.log_handlers import setup_logging, teardown_logging

    log = logging.getLogger("asrkit.training.some_module")
    for rank in (0, 1):
        setup_logging(tmp_path, DistributedContext(rank=rank, world_size=2), progress_bar=False)
        try:
            log.warning("shared %d", rank)
            log.warning("own %d", rank, extra={"every_rank": True})
            log.error("failed %d", rank)
        finally:
            teardown_logging()
    def messages(text: str) -> list[str]:  # "... [rank 1] ERROR failed 1" -> "failed 1"
        return [" ".join(line.split()[-2:]) for line in text.splitlines()]

    assert messages(capsys.readouterr().err) == [
        "shared 0", "own 0", "failed 0", "own 1", "failed 1"]
    assert messages((tmp_path / "train.log").read_text()) == [
        "shared 0", "own 0", "failed 0", "failed 1"]
