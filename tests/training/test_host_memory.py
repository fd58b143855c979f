"""asrkit.training.host_memory: with freed memory kept, allocating large tensors again
faults in far fewer new pages; with glibc's defaults every allocation does. Each case runs in
a fresh subprocess, whatever this process's malloc settings (trainer tests change them)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from asrkit.training import host_memory

MIB = 1 << 18  # float32 elements per MiB
PAGES_PER_ROUND = (64 + 48 + 64 + 48) * 256  # 4 KiB pages the four tensors below fill

# A "training step": large tensors allocated, written and freed again, in several sizes.
PROBE = f"""
import json, resource, sys, torch
from asrkit.training.host_memory import keep_freed_memory
said = keep_freed_memory() if sys.argv[1] == "keep" else "defaults"
faults = []
for _ in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = torch.ones(64 * {MIB}); b = torch.ones(48 * {MIB}); c = a * 2; d = b + 1
    del a, b, c, d
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({{"said": said, "faults": faults}}))
"""


def _page_faults(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _huge_pages_always() -> bool:
    path = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    return path.exists() and "[always]" in path.read_text()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
@pytest.mark.skipif(_huge_pages_always(), reason="the page counts assume 4 KiB pages; "
                    "transparent huge pages are always on here")
def test_freed_memory_is_reused_instead_of_faulted_in_again():
    kept, default = _page_faults("keep"), _page_faults("default")
    assert kept["said"] == "freed blocks kept for reuse (glibc mallopt)"
    # glibc's defaults: each of the tensors (all above its largest mmap threshold, 32 MiB)
    # is a fresh mmap, faulted in page by page, in every round
    assert all(f >= 0.95 * PAGES_PER_ROUND for f in default["faults"]), default
    # kept: the first round grows the heap; later rounds mostly reuse it
    assert kept["faults"][0] >= 0.95 * PAGES_PER_ROUND, kept
    assert sum(kept["faults"][1:]) <= 0.5 * sum(default["faults"][1:]), (kept, default)


def test_other_c_libraries_are_left_alone(monkeypatch):
    monkeypatch.setattr(host_memory.platform, "libc_ver", lambda: ("musl", "1.2"))
    assert host_memory.keep_freed_memory().startswith("unchanged (malloc is not glibc's")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_false_after_a_run_that_kept_memory_says_it_is_still_kept():
    """A sweep's runs share a process: `false` after `true` cannot undo mallopt, and the
    log must not claim malloc's defaults."""
    code = ("from asrkit.training.host_memory import keep_freed_memory as k\n"
            "print(k(False)); print(k(True)); print(k(False))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == ["malloc's defaults (trainer.keep_freed_memory=false)",
                   "freed blocks kept for reuse (glibc mallopt)",
                   ("freed blocks still kept for reuse: an earlier run in this process set it, "
                    "and malloc cannot go back (trainer.keep_freed_memory=false)")]
