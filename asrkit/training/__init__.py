"""Training: the loop, optimisers and schedules, checkpoints, averaging, DDP, logging.

    asrkit train +experiment=synth/conformer exp_dir=exp/conformer \\
        data.train=data/synth/train.jsonl data.dev=data/synth/dev.jsonl \\
        data.cmvn=data/synth/cmvn.json tokenizer.dir=data/synth/bpe100 trainer.max_epochs=20
    asrkit average exp/conformer --num 10 [--best-by dev_loss|dev_wer | --last]

What other code relies on (decoding, scoring, compare) is the experiment directory,
``exp/<name>/``: its layout (``config.yaml``, ``tokenizer/``, ``cmvn.json``, ``train.log``,
``.train.lock``, ``tensorboard/``, ``checkpoints/``, ``avg_N.pt``, ``averaged.json``,
``decode/``, ``results.md``) is spelt in asrkit.experiment_dir's docstring, the one owner.

Every checkpoint loads with ``torch.load(weights_only=True)`` and
``asrkit.models.checkpoint.load_model``: ``model``, ``config``, ``epoch``, ``step``,
``train_hours`` (wall-clock training time so far), ``metrics`` (``epoch``, ``step``,
``train_hours``, and after each epoch ``dev_loss``, ``dev_wer``, ``dev_cer`` (percent,
CTC greedy; transducer greedy for a transducer without CTC), ``dev_acc``, ``dev_<term>``,
``train_<term>``: every rank's mean under DDP), plus the training state
(optimizer, scheduler, grad_scaler, loader, rng, epoch_complete, counters, world_size,
load_failures).
Averaged files hold ``model``, ``config``, ``averaged_from``, ``epoch``, ``step``,
``train_hours`` and ``metrics["averaged"]`` (the metrics of each checkpoint averaged).

Modules:

- the run: run (``asrkit train``'s job: set up, train, clean up, each failure one line with
  its exit status), trainer (the loop), sweep (``-m``: every job checked, then run one by
  one), distributed (DDP), train_lock (one run per exp_dir), stop_signals (SIGINT/SIGTERM as
  a clean stop), host_memory (freed host memory kept in the process);
- before it starts: preflight (the checks across sections), ignored_overrides (command-line
  keys the model ignores, named), experiment (the exp dir's copies and config.yaml),
  log_handlers (where log lines go: stderr, train.log, per rank), setup_summary (the lines
  logged once set up);
- a step: train_step (one micro-batch / update, failure handling), optimizer_step (an
  update that is a no-op on the device when the gradient norm is not finite),
  update_outcomes (each update's outcome, kept on the device until read), running_means
  (the logged means, kept on the device), precision, activation_checkpointing, mwer_nbest
  (MWER's N-best lists and word errors), optim, schedulers;
- state and files: training_state (what a checkpoint restores besides the weights),
  checkpoint (files, retention, where to resume), rng (the RNG states a checkpoint stores;
  data loading kept out of the model's random stream), resume (``init_from``, ``resume``),
  average;
- what the user sees: validation (dev loss, WER/CER), progress, tensorboard,
  attention_maps.
"""
