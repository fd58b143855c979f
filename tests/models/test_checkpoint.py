import pytest
import torch

from asrkit.config import compose_train_config
from asrkit.models.build import build_model
from asrkit.models.checkpoint import load_model, read_checkpoint


def test_round_trip_with_weights_only(tmp_path):
    config = compose_train_config(["+experiment=synth/transformer", "vocab_size=20",
                                   "encoder.num_layers=1", "decoder.num_layers=1"])
    model = build_model(config)
    torch.save({"model": model.state_dict(), "config": config, "epoch": 3}, tmp_path / "c.pt")
    loaded, loaded_config = load_model(tmp_path / "c.pt")
    assert loaded_config == config and not loaded.training
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt: checkpoint not found"):
        read_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt: corrupt or unreadable checkpoint"):
        read_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt: not an asrkit checkpoint"):
        read_checkpoint(tmp_path / "other.pt")
