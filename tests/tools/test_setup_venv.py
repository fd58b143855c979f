"""tools/setup_venv.sh: a venv whose torch and torchaudio do not work together is rebuilt
once; if it still fails the script stops with one line naming both versions. A stand-in uv
makes venvs whose python passes or fails the check, so no package is downloaded."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The stand-in uv: `uv sync` makes $UV_PROJECT_ENVIRONMENT/bin/python; the first $BROKEN
# syncs (counted in $SYNC_LOG) give a python whose torch/torchaudio check fails.
FAKE_UV = r"""#!/usr/bin/env bash
echo "$*" >> "$SYNC_LOG"
if [ -n "${FAIL:-}" ]; then printf '%s\n\nhint: run `uv lock`\n' "$FAIL" >&2; exit 2; fi
n=$(wc -l < "$SYNC_LOG")
mkdir -p "$UV_PROJECT_ENVIRONMENT/bin"
py="$UV_PROJECT_ENVIRONMENT/bin/python"
if [ "$n" -le "$BROKEN" ]; then
  printf '#!/usr/bin/env bash\nif grep -q importlib.metadata; then echo "torch 2.11.0 with torchaudio 2.11.1"; exit 0; fi\necho "Traceback: undefined symbol" >&2; exit 1\n' > "$py"
else
  printf '#!/usr/bin/env bash\ncat > /dev/null; exit 0\n' > "$py"
fi
chmod +x "$py"
"""


def run_setup(tmp_path: Path, broken: int, fail: str = "") -> subprocess.CompletedProcess:
    root = tmp_path / "repo"
    (root / "tools").mkdir(parents=True, exist_ok=True)
    for name in ("setup_venv.sh", "uv.sh"):
        shutil.copy(ROOT / "tools" / name, root / "tools" / name)
    (root / "uv.lock").write_text("lock\n")
    (root / "pyproject.toml").write_text("[project]\n")
    version = next(line.split("=")[1] for line in (ROOT / "tools/uv.sh").read_text().splitlines()
                   if line.startswith("uv_version="))
    uv = root / ".tools" / f"uv-{version}" / "bin" / "uv"
    uv.parent.mkdir(parents=True, exist_ok=True)
    uv.write_text(FAKE_UV)
    uv.chmod(0o755)
    env = {**os.environ, "SYNC_LOG": str(tmp_path / "syncs.log"), "BROKEN": str(broken),
           "ASRKIT_VENV": str(tmp_path / "venv"), "FAIL": fail}
    return subprocess.run(["bash", str(root / "tools/setup_venv.sh")], capture_output=True,
                          text=True, env=env, check=False)


def syncs(tmp_path: Path) -> list[str]:
    return (tmp_path / "syncs.log").read_text().splitlines()


def test_a_working_venv_is_synced_from_the_lock_once(tmp_path):
    out = run_setup(tmp_path, broken=0)
    assert out.returncode == 0 and out.stderr == ""
    assert len(syncs(tmp_path)) == 1
    assert "sync --locked --extra dev --extra export" in syncs(tmp_path)[0]


def test_the_check_is_skipped_once_this_lock_passed_it(tmp_path):
    assert run_setup(tmp_path, broken=0).returncode == 0
    assert (tmp_path / "venv" / ".asrkit-checked").is_file()
    (tmp_path / "syncs.log").unlink()
    again = run_setup(tmp_path, broken=1)  # synced again, but its python is not run
    assert again.returncode == 0 and again.stderr == "" and len(syncs(tmp_path)) == 1


def test_a_broken_pair_is_rebuilt_once(tmp_path):
    out = run_setup(tmp_path, broken=1)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == (f"setup_venv: torch 2.11.0 with torchaudio 2.11.1 do not work "
                                  f"together; rebuilding {tmp_path / 'venv'} from uv.lock")
    assert len(syncs(tmp_path)) == 2


def test_a_pair_that_stays_broken_stops_with_one_line_naming_both(tmp_path):
    out = run_setup(tmp_path, broken=2)
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last == ("setup_venv: broken environment: torch 2.11.0 with torchaudio 2.11.1 fail "
                    "to import or compute fbank together (see uv.lock)")
    assert "Traceback" not in out.stderr


def test_a_lock_behind_pyproject_names_tools_lock_sh_not_uv(tmp_path):
    """uv's hint names `uv lock`, which is not on PATH: the line says tools/lock.sh."""
    stale = "error: The lockfile at `uv.lock` needs to be updated, but `--locked` was provided."
    out = run_setup(tmp_path, broken=0, fail=stale)
    assert out.returncode == 1
    assert out.stderr == ("setup_venv: uv.lock does not match pyproject.toml: refresh it with "
                          "tools/lock.sh\n")
    other = run_setup(tmp_path / "other", broken=0, fail="error: No space left on device")
    assert other.returncode == 1 and other.stderr.startswith("error: No space left on device\n")


def test_a_venv_of_another_checkout_says_it_now_runs_this_one(tmp_path):
    """uv sync re-points the venv's editable install at the checkout that runs it."""
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    finder = site / "__editable___asrkit_0_1_0_finder.py"
    finder.write_text("import sys\nMAPPING: dict[str, str] = {'asrkit': '/elsewhere/asrkit'}\n")
    out = run_setup(tmp_path, broken=0)
    assert out.returncode == 0
    assert out.stderr == (f"setup_venv: {tmp_path / 'venv'} ran the asrkit of /elsewhere; it "
                          f"now runs {tmp_path / 'repo'}'s (a virtualenv serves one checkout: "
                          "give each its own ASRKIT_VENV)\n")
    finder.write_text(f"MAPPING: dict[str, str] = {{'asrkit': '{tmp_path / 'repo'}/asrkit'}}\n")
    (tmp_path / "venv" / ".asrkit-checked").unlink()
    assert run_setup(tmp_path, broken=0).stderr == ""  # its own: nothing to say
