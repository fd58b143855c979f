"""Training: the loop, optimisers and schedules, checkpoints, averaging, DDP, logging.

    asrkit train +experiment=synth/conformer exp_dir=exp/conformer \\
        data.train=data/synth/train.jsonl data.dev=data/synth/dev.jsonl \\
        data.cmvn=data/synth/cmvn.json tokenizer.dir=data/synth/bpe100 trainer.max_epochs=20
    asrkit average exp/conformer --num 10 [--best-by dev_loss|dev_wer | --last]

What other code relies on (decoding, scoring, compare):

    exp/<name>/
      config.yaml          resolved config (plain YAML): vocab_size set, tokenizer.dir and
                           data.cmvn pointing at the copies below (absolute paths)
      tokenizer/           the tokenizer (load_tokenizer)
      cmvn.json            the CMVN statistics (absent if data.cmvn was null)
      train.log            rank 0's log
      tensorboard/         scalars (train/<term>, dev/<term>, lr, grad_norm, frames_per_s)
                           and attention images
      checkpoints/         epoch_N.pt, step_N.pt, last.pt -> newest
      avg_N.pt             averaged weights of the last N epochs (`asrkit average`);
                           avg_best_<metric>_N.pt: the best N by a dev metric

Every checkpoint loads with ``torch.load(weights_only=True)`` and
``asrkit.models.checkpoint.load_model``: ``model``, ``config``, ``epoch``, ``step``,
``train_hours`` (wall-clock training time so far), ``metrics`` (``epoch``, ``step``,
``train_hours``, and after each epoch ``dev_loss``, ``dev_wer``, ``dev_cer`` (percent,
CTC greedy; transducer greedy for a transducer without CTC), ``dev_acc``, ``dev_<term>``,
``train_<term>``: every rank's mean under DDP), plus the training state
(optimizer, scheduler, grad_scaler, loader, rng, epoch_complete, counters, world_size).
Averaged files hold ``model``, ``config``, ``averaged_from``, ``epoch``, ``step``,
``train_hours`` and ``metrics["averaged"]`` (the metrics of each checkpoint averaged).

Modules: trainer (the loop), train_step (one micro-batch / update, failure handling),
validation, checkpoint (files, retention, RNG states), resume, average, optim, schedulers,
precision, activation_checkpointing, distributed, experiment (exp dir, logging),
preflight, progress, tensorboard, attention_maps, stop_signals, rng.
"""
