"""benchmarks/gpu_check.py's parts that need no GPU: options, FLOP/MFU arithmetic, kernel-name
classes, the table, the training-log checks; and the script's behaviour without a GPU."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from benchmarks import gpu_check

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_and_sections():
    args = gpu_check.parse_args([])
    assert args.sections == list(gpu_check.SECTIONS) and args.budget_s == 450
    assert args.presets == list(gpu_check.PRESETS) and args.modes == ["eager", "compiled"]
    args = gpu_check.parse_args(["--only", "steps, decode", "--peak-tflops", "500",
                                 "--modes", "eager"])
    assert args.sections == ["steps", "decode"] and args.peak_tflops == 500
    assert args.modes == ["eager"]


@pytest.mark.parametrize("argv, message", [
    (["--only", "steps,trian"], "--only: unknown section(s) trian"),
    (["--presets", "synth/conformr"], "--presets: no batch shape for synth/conformr"),
])
def test_bad_options_are_named(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        gpu_check.parse_args(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("device, peak", [
    ("NVIDIA H200", 989.0), ("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA H100 PCIe", 756.0),
    ("NVIDIA A100-SXM4-80GB", 312.0), ("NVIDIA L4", 121.0), ("Some Future GPU", None),
])
def test_peak_by_device_name(device, peak):
    assert gpu_check.peak_tflops_for(device) == peak
    assert gpu_check.peak_tflops_for(device, override=123.0) == 123.0


def test_mfu_arithmetic():
    # 494.5 TFLOP in a 1 s step on a 989 TFLOP/s GPU: half the peak
    assert gpu_check.mfu(494.5e12, 1000.0, 989.0) == pytest.approx(0.5)
    assert gpu_check.mfu(1e12, 10.0, 200.0) == pytest.approx(0.5)  # 100 TFLOP/s of 200
    assert gpu_check.mfu(1e12, 10.0, None) is None


@pytest.mark.parametrize("name, cls", [
    ("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128>>", "flash"),
    ("fmha_cutlassF_bf16_aligned_64x64_rf_sm80(PyTorchMemEffAttention::AttentionKernel)",
     "efficient"),
    ("fmha_cutlassB_bf16_aligned_64x64_k64_sm80", "efficient"),
    ("triton_tem_fused_flex_attention_0", "flex"),
    ("triton_tem_fused_flex_attention_backward_1", "flex"),
    ("cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wmma_f16_knob_7", "cudnn"),
    ("cudnn::bn_fw_tr_1C11_kernel_NCHW", None),
    ("void (anonymous namespace)::softmax_warp_forward<c10::BFloat16>", "math"),
    ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64", None),
])
def test_kernel_name_classes(name, cls):
    assert gpu_check.kernel_class(name) == cls


def test_attention_kernel_summary():
    names = ["triton_tem_fused_flex_attention_0", "fmha_cutlassF_bf16", "softmax_warp_forward",
             "sm90_xmma_gemm"]
    assert gpu_check.attention_kernels(names) == "efficient+flex"
    assert gpu_check.attention_kernels(["softmax_warp_forward", "gemm"]) == "math"
    assert gpu_check.attention_kernels(["gemm"]) == "none seen"


def test_table_has_a_line_per_cell():
    rows = [{"preset": "librispeech/conformer_l", "mode": "compiled", "batch": "48x1500",
             "ms_per_step": 812.34, "frames_per_s": 88640.0, "peak_mem_gib": 61.2,
             "tflop_per_s": 421.5, "mfu": 0.4262, "attention": "efficient+flex"},
            {"preset": "aishell/conformer", "mode": "eager", "error": "timed out after 90 s"}]
    table = gpu_check.format_table(rows).splitlines()
    assert table[0].split() == ["preset", "mode", "batch", "ms/step", "frames/s", "peak",
                                "GiB", "TFLOP/s", "MFU", "attention"]
    assert table[2].split() == ["librispeech/conformer_l", "compiled", "48x1500", "812.3",
                                "88,640", "61.20", "421.5", "42.6%", "efficient+flex"]
    assert table[3].endswith("failed: timed out after 90 s")


LOG = """\
2026-12-01 10:00:01 INFO epoch 1  batch 20/60  update 20  loss_ctc 95.3  loss_att 40.1  acc 0.02  loss 67.7  lr 1.000e-04  grad_norm 50.1  9000 frames/s
2026-12-01 10:00:05 INFO epoch 1 update 60 dev: loss_ctc 80.1  loss_att 35.2  acc 0.1  loss 57.6  WER 99.00%  CER 98.00%  (40 utterances, 0:02)
2026-12-01 10:00:09 INFO epoch 2  batch 20/60  update 80  loss_ctc 12.3  loss_att 9.1  acc 0.5  loss 1.07e+01  lr 5.000e-04  grad_norm 3.2  9100 frames/s
2026-12-01 10:00:12 INFO update 100: exp/checkpoints/step_100.pt
"""


def test_loss_curve_reads_the_periodic_lines_only():
    assert gpu_check.loss_curve(LOG) == [(20, 67.7), (80, 10.7)]


def test_loss_falls():
    falling = [(i, 100.0 / (1 + i)) for i in range(0, 300, 20)]
    assert gpu_check.loss_falls(falling)
    assert not gpu_check.loss_falls([(i, 50.0) for i in range(0, 300, 20)])
    assert not gpu_check.loss_falls(falling[:3])  # too few points to tell


def test_without_a_gpu_the_script_says_so_at_once():
    out = subprocess.run(["bash", str(ROOT / "benchmarks/gpu_check.sh"), "--only", "steps",
                          "--budget-s", "30"], capture_output=True, text=True, cwd=ROOT,
                         env={"CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"}, timeout=120,
                         check=False)
    assert out.returncode == 1, out.stderr
    assert "no CUDA device visible" in out.stdout


def test_help_runs_from_the_shell_script():
    out = subprocess.run(["bash", str(ROOT / "benchmarks/gpu_check.sh"), "--help"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert out.returncode == 0 and "--peak-tflops" in out.stdout


def test_updates_per_epoch_come_from_the_setup_line():
    """The trainer's own setup line, not the last periodic log line (a multiple of 20: a
    58-update epoch read as 40, so the run trained half as many epochs more than needed)."""
    from asrkit.training import setup_summary

    source = Path(setup_summary.__file__).read_text()
    assert "epoch 1: %d batches per rank, %d updates" in source  # the line parsed below
    log = ("INFO train: 304 utterances; epoch 1: 58 batches per rank, 58 updates (accum_grad "
           "1; later epochs may differ by a few batches); dev: 32 utterances\n"
           "INFO epoch 1  batch 40/58  update 40  loss 120.3  lr 1.000e-03  grad_norm 3  10 "
           "frames/s\n")
    assert gpu_check.updates_per_epoch(log) == 58 and gpu_check.loss_curve(log)[-1][0] == 40
    assert gpu_check.updates_per_epoch("no setup line") == 0


def test_the_steps_table_takes_what_the_training_sections_will_not_use():
    every = list(gpu_check.SECTIONS)
    assert gpu_check.steps_share(["steps"], True) == 1.0
    assert gpu_check.steps_share(every, True) == 0.55
    assert gpu_check.steps_share(every, False) == 0.85  # no corpus: train and ddp skip
    assert gpu_check.steps_share(["steps", "decode"], True) == 0.85


def test_a_bundled_corpus_is_the_default_data(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "BUNDLED_DATA", tmp_path / "missing")
    assert gpu_check.parse_args([]).data is None
    monkeypatch.setattr(gpu_check, "BUNDLED_DATA", tmp_path)
    monkeypatch.setattr(gpu_check.shutil, "which", lambda tool: None)  # no espeak-ng, flite
    args = gpu_check.parse_args([])
    assert args.data == tmp_path and not gpu_check.corpus_possible(args)  # still empty
    for name in ("train.jsonl", "dev.jsonl", "test.jsonl", "cmvn.json"):
        (tmp_path / name).write_text("")
    (tmp_path / "bpe100").mkdir()
    assert gpu_check.corpus_possible(args)
    assert gpu_check.parse_args(["--data", str(tmp_path / "x")]).data == tmp_path / "x"
