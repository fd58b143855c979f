"""The typed schemas in Hydra's ConfigStore, under the names the YAML files' defaults lists
use (``conf/train.yaml``: ``- train_schema``; ``conf/decode.yaml``: ``- decode_schema``).
Hydra merges every YAML value onto its schema while composing, so a value of the wrong
type or a key the schema lacks fails there, naming the full key."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from asrkit.config.decode import DecodeConfig
from asrkit.config.train import TrainConfig

SCHEMAS = {"train_schema": TrainConfig, "decode_schema": DecodeConfig}


def register_schemas() -> None:
    store = ConfigStore.instance()
    for name, node in SCHEMAS.items():
        store.store(name=name, node=node)
