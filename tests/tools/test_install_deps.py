"""tools/install_deps.sh as a non-root user: prints the exact apt-get command, exits 1."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def shim(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def run_install_deps(tmp_path: Path, installed: set[str], uid: int) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim(bin_dir, "id", f"echo {uid}")
    cases = " ".join(installed) or "none"
    shim(bin_dir, "dpkg-query", 'for a; do pkg=$a; done\n'
         f'for p in {cases}; do [ "$pkg" = "$p" ] && printf "install ok installed" && exit 0; done\n'
         "exit 1")
    shim(bin_dir, "apt-get", 'echo "apt-get $*" >> "$APT_LOG"')
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "APT_LOG": str(tmp_path / "apt.log")}
    return subprocess.run(["bash", str(ROOT / "tools/install_deps.sh")], capture_output=True,
                          text=True, env=env, check=False)


def test_non_root_prints_the_command_for_what_is_missing(tmp_path):
    out = run_install_deps(tmp_path, installed={"sox", "flite"}, uid=1000)
    assert out.returncode == 1
    assert "missing Debian packages: espeak-ng sctk" in out.stderr
    assert ("sudo sh -c 'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
            "espeak-ng sctk'") in out.stderr
    assert not (tmp_path / "apt.log").exists()


def test_root_installs_only_what_is_missing(tmp_path):
    out = run_install_deps(tmp_path, installed={"espeak-ng", "sox"}, uid=0)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "apt.log").read_text().splitlines() == [
        "apt-get update", "apt-get install -y flite sctk"]


def test_nothing_to_do_when_all_installed(tmp_path):
    out = run_install_deps(tmp_path, installed={"espeak-ng", "flite", "sox", "sctk"}, uid=1000)
    assert out.returncode == 0 and out.stderr == ""
