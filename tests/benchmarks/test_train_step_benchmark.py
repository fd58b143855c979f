"""benchmarks/train_step.py's parts that need no model run: the profile categories and
breakdown, the command line handed to each measuring subprocess, the table."""

from __future__ import annotations

import pytest

from benchmarks import train_step


@pytest.mark.parametrize("op, category", [
    ("aten::addmm", "matmuls"), ("aten::mm", "matmuls"), ("aten::baddbmm", "matmuls"),
    ("aten::_scaled_dot_product_flash_attention_for_cpu", "matmuls"),
    ("aten::mkldnn_convolution", "convolutions"), ("aten::convolution_backward", "convolutions"),
    ("aten::bernoulli_", "dropout masks"), ("aten::random_", "dropout masks"),
    ("aten::copy_", "copies"), ("aten::cat", "copies"),
    ("aten::scatter", "other"), ("aten::mul", "other"), ("aten::commit", "other"),
])
def test_op_categories(op, category):
    assert train_step.op_category(op) == category


def test_profile_breakdown_shares_and_top_ops():
    events = [("aten::mm", 50.0, 10), ("aten::bernoulli_", 20.0, 4), ("aten::copy_", 10.0, 30),
              ("aten::mul", 15.0, 8), ("aten::convolution_backward", 5.0, 2)]
    result = train_step.profile_breakdown(events, top=2)
    assert result["total_ms"] == 100.0
    assert [op["op"] for op in result["ops"]] == ["aten::mm", "aten::bernoulli_"]
    assert result["ops"][0]["share"] == pytest.approx(0.5) and result["ops"][0]["calls"] == 10
    assert result["categories"] == pytest.approx({"matmuls": 0.5, "dropout masks": 0.2,
                                                  "other": 0.15, "copies": 0.1,
                                                  "convolutions": 0.05})
    assert list(result["categories"]) == ["matmuls", "dropout masks", "other", "copies",
                                          "convolutions"]  # largest first


def test_children_get_the_options_but_not_the_preset_list():
    argv = ["--presets", "synth/conformer", "aishell/conformer encoder.dropout=0", "--frames",
            "4000", "--compare", "HEAD", "--rounds", "5", "--profile", "10"]
    assert train_step.passthrough_args(argv) == ["--frames", "4000", "--profile", "10"]


def test_children_get_the_malloc_mode_from_their_caller_only():
    argv = ["--compare-malloc", "--malloc", "default", "--frames", "4000", "--presets",
            "aishell/conformer", "--malloc=keep", "--rounds=2"]
    assert train_step.passthrough_args(argv) == ["--frames", "4000"]


def test_table_prints_each_row(capsys):
    row = {"preset": "aishell/conformer", "params_m": 43.3, "batch": "24x500",
           "precision": "fp32", "ms_per_step": 10947.0, "frames_per_s": 1096.0,
           "x_real_time": 11.0, "gflop_per_step": 940.0, "tflop_per_s": 0.086,
           "peak_rss_gib": 6.34, "device": "cpu", "threads": 2}
    train_step.print_table([row])
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["aishell/conformer", "43.3M", "24x500", "fp32", "10947", "1,096",
                              "11.0", "940.0", "0.086", "6.34"]
    assert out[-1] == "device: cpu, 2 threads"
