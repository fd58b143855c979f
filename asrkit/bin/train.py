"""Train a model from the Hydra config tree (conf/train.yaml) into an experiment directory.

    asrkit train +experiment=synth/conformer exp_dir=exp/conformer \\
        data.train=data/synth/train.jsonl data.dev=data/synth/dev.jsonl \\
        data.cmvn=data/synth/cmvn.json tokenizer.dir=data/synth/bpe100 trainer.max_epochs=20
    asrkit train ... trainer.devices=2                    # 2 processes (DDP) on this machine
    torchrun --nproc_per_node=8 -m asrkit train ...       # the same, launched by torchrun

Every key of conf/ can be overridden (`optim=adamw scheduler=warmup_cosine optim.lr=2e-3
trainer.accum_grad=4 trainer.precision=bf16`). The config is checked before anything heavy
starts: an unknown key or a bad value exits at once with status 2 naming the key.
Rerunning the same command continues from the newest checkpoint (trainer.resume=auto); with
a larger trainer.max_epochs it trains on, the learning-rate schedule stretched to the new
length. exp_dir is the run directory: hydra.* overrides (hydra.run.dir, ...) are refused,
as Hydra's launcher is not used.

    asrkit train -m encoder=transformer,conformer optim.lr=1e-3,2e-3 exp_dir=exp/sweep ...

-m (--multirun) sweeps as Hydra's basic sweeper does: every combination of the
comma-separated values is one run, in exp_dir/<n>_<key>-<value>+..., one after another; every
run's config is checked first (asrkit/training/sweep.py).

    asrkit train --config-dir my_conf encoder=mine ...

--config-dir DIR (repeatable) adds DIR to the config search path: my_conf/encoder/mine.yaml
is then a choice of the encoder group, whose _target_ may name your own class (importable,
e.g. on PYTHONPATH) that fulfils asrkit.models.encoder_interface.
Exit status: 0 done, 1 training failed, 2 bad config, 130/143 stopped by SIGINT/SIGTERM
after writing a checkpoint. See asrkit/training/ for the loop and the experiment directory.
"""

from __future__ import annotations

import sys

from asrkit.config import CONFIG_ERRORS, one_line
from asrkit.config.search_path import split_config_dirs


def main(argv: list[str]) -> int:
    if any(arg in ("-h", "--help") for arg in argv):
        print(__doc__)
        return 0
    from asrkit.training.sweep import plan_jobs, run_jobs

    multirun = any(arg in ("-m", "--multirun") for arg in argv)
    argv = [arg for arg in argv if arg not in ("-m", "--multirun")]
    try:
        argv, config_dirs = split_config_dirs(argv)
        jobs = plan_jobs(argv, multirun, config_dirs)
    except CONFIG_ERRORS as e:
        print(f"asrkit train: {one_line(e)}", file=sys.stderr)
        return 2
    return run_jobs(jobs, multirun, config_dirs)
