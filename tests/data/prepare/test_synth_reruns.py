"""synth's reruns: the new audio and manifests go into place together, all or none
(asrkit.data.prepare.synth install/clean, asrkit.data.manifest.write_manifests), whatever
fails or interrupts a run; a user's files under wav/ are kept."""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import pytest
import soundfile as sf

from asrkit.bin.prepare import main as prepare_main
from asrkit.data.manifest import read_manifest
from asrkit.data.prepare import run_preparer
from asrkit.data.prepare.synth import synthesize as synth_module
from asrkit.data.prepare.synth.plan import SPLITS
from asrkit.data.prepare.synth.voices import ESPEAK, FLITE

synth_package = importlib.import_module("asrkit.data.prepare.synth")
needs_engine = pytest.mark.skipif(not (shutil.which(ESPEAK) or shutil.which(FLITE)),
                                  reason="needs espeak-ng or flite")


@needs_engine
def test_rerun_with_fewer_utterances_leaves_no_stale_wavs(tmp_path: Path):
    run_preparer("synth", None, tmp_path, num_utts=12, seed=0, noise_snr=None)
    run_preparer("synth", None, tmp_path, num_utts=6, seed=0, noise_snr=None)
    listed = {u.audio for s in SPLITS for u in read_manifest(tmp_path / f"{s}.jsonl")}
    assert {str(p) for p in tmp_path.glob("wav/*/*.wav")} == listed and len(listed) == 6


@needs_engine
def test_a_failed_or_interrupted_rerun_leaves_the_manifests_and_their_audio(tmp_path: Path,
                                                                          monkeypatch):
    run_preparer("synth", None, tmp_path, num_utts=12, seed=0, noise_snr=None)
    before = corpus_bytes(tmp_path)
    assert len(before) == 4 + 12
    # every synthesis fails: nothing is kept, so no manifest is written and no audio goes
    monkeypatch.setattr(synth_module, "engine_command", lambda r: ["sh", "-c", "exit 3"])
    summary = run_preparer("synth", None, tmp_path, num_utts=6, seed=1, noise_snr=None)
    assert summary.total_kept == 0
    # Ctrl-C (in the main thread, which waits for the pool) amid another seed's synthesis
    class InterruptedPool:
        def __init__(self, processes):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def map(self, fn, items, chunksize=1):
            for item in items[:3]:
                fn(item)
            raise KeyboardInterrupt

    monkeypatch.setattr(synth_module, "engine_command", real)
    with monkeypatch.context() as patched:
        patched.setattr(synth_package, "ThreadPool", InterruptedPool)
        with pytest.raises(KeyboardInterrupt):
            run_preparer("synth", None, tmp_path, num_utts=12, seed=2, noise_snr=None)
    # a full disk while writing the dev manifest, after train's was written
    from asrkit.data import manifest as manifest_module

    write_temp = manifest_module._write_temp

    def full_at_dev(path, utterances):
        if path.name == "dev.jsonl":
            raise OSError(28, "No space left on device")
        return write_temp(path, utterances)

    monkeypatch.setattr(manifest_module, "_write_temp", full_at_dev)
    with pytest.raises(OSError, match="No space left"):
        run_preparer("synth", None, tmp_path, num_utts=12, seed=5, noise_snr=None)
    after = corpus_bytes(tmp_path)
    assert after == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "dev.jsonl", "test.jsonl", "test_unseen.jsonl", "train.jsonl", "wav"]


real = synth_module.engine_command


@contextmanager
def on_rename_to(monkeypatch, target: Path, act: Callable[[], None], once: bool = False):
    """os.replace patched: ``act()`` (send a signal, raise an error) before a rename onto
    ``target``, each time or ``once``."""
    replace, acted = os.replace, []

    def hooked(src, dst):
        if Path(dst) == target and not (once and acted):
            acted.append(dst)
            act()
        replace(src, dst)

    with monkeypatch.context() as patched:
        patched.setattr(os, "replace", hooked)
        yield


def raising(error: BaseException) -> Callable[[], None]:
    def act() -> None:
        raise error
    return act


def ctrl_c() -> None:
    signal.raise_signal(signal.SIGINT)


def corpus_bytes(out: Path) -> dict[Path, bytes]:
    """Every manifest's and audio file's bytes, to compare a corpus before and after."""
    return {p: p.read_bytes() for p in [*out.glob("*.jsonl"), *out.glob("wav/*/*")]}


def assert_manifests_match_their_audio(out: Path) -> None:
    """Every manifest line's audio exists with the duration listed; no audio unlisted; no
    staging or replaced audio and no temp or set-aside manifest left."""
    listed = set()
    for split in SPLITS:
        for u in read_manifest(out / f"{split}.jsonl"):
            assert abs(sf.info(u.audio).frames / 16000 - u.duration) < 1e-3, u.id
            listed.add(str(u.audio))
    assert {str(p) for p in out.glob("wav/*/*") if p.name != "NOTES.txt"} == listed  # a user's
    assert sorted(p.name for p in out.iterdir()) == [
        "dev.jsonl", "test.jsonl", "test_unseen.jsonl", "train.jsonl", "wav"]


@needs_engine
def test_ctrl_c_while_the_audio_and_manifests_go_into_place_waits_for_them(tmp_path: Path,
                                                                           monkeypatch):
    run_preparer("synth", None, tmp_path, num_utts=12, seed=0, noise_snr=None)
    before = (tmp_path / "train.jsonl").read_text()
    # Ctrl-C once train's audio is in place
    with on_rename_to(monkeypatch, tmp_path / "wav" / "dev", ctrl_c), \
            pytest.raises(KeyboardInterrupt):
        run_preparer("synth", None, tmp_path, num_utts=8, seed=2, noise_snr=None)
    assert (tmp_path / "train.jsonl").read_text() != before  # the new run's, whole
    assert_manifests_match_their_audio(tmp_path)
    assert len(list(tmp_path.glob("wav/*/*"))) == 8


@needs_engine
def test_ctrl_c_held_until_the_new_corpus_is_in_place_says_so(tmp_path: Path, monkeypatch,
                                                              capsys):
    run_preparer("synth", None, tmp_path, num_utts=12, seed=0, noise_snr=None)
    with on_rename_to(monkeypatch, tmp_path / "wav" / "dev", ctrl_c):
        assert prepare_main(["synth", "--out", str(tmp_path), "--num-utts", "8", "--seed", "2",
                             "--noise-snr", "off"]) == 130
    out, err = capsys.readouterr()
    assert "test_unseen" in out  # the summary of what was written
    assert err == ("asrkit prepare synth: interrupted once the new manifests were in place "
                   "(they are complete)\n")
    assert_manifests_match_their_audio(tmp_path)


@needs_engine
def test_files_of_the_users_own_under_wav_survive_a_rerun_and_a_failed_one(tmp_path: Path,
                                                                           monkeypatch):
    run_preparer("synth", None, tmp_path, num_utts=12, seed=0, noise_snr=None)
    (tmp_path / "wav" / "train" / "NOTES.txt").write_text("mine")
    (tmp_path / "wav" / "train" / "extra").mkdir()
    for name in ("train-000001_sp0.9.wav", "train-notes.wav"):  # named like synth's, not it
        (tmp_path / "wav" / "train" / name).write_text(name)
    (tmp_path / "wav" / "train" / "dev-000001.wav").write_text("another split's name")
    run_preparer("synth", None, tmp_path, num_utts=8, seed=2, noise_snr=None)
    assert (tmp_path / "wav" / "train" / "NOTES.txt").read_text() == "mine"
    assert (tmp_path / "wav" / "train" / "extra").is_dir()
    # after train's and dev's audio went in
    with on_rename_to(monkeypatch, tmp_path / "wav" / "test",
                      raising(OSError(5, "Input/output error"))), pytest.raises(OSError):
        run_preparer("synth", None, tmp_path, num_utts=12, seed=3, noise_snr=None)
    assert (tmp_path / "wav" / "train" / "NOTES.txt").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "wav" / "train").iterdir()
                  if not p.name.startswith("train-0000") or "_" in p.name
                  or p.is_dir()) == ["NOTES.txt", "dev-000001.wav", "extra",
                                     "train-000001_sp0.9.wav", "train-notes.wav"]
    assert len(read_manifest(tmp_path / "train.jsonl")) == 5  # seed 2's 8 utterances


KILLED_AT = """
import os, sys
from pathlib import Path
from asrkit.data.prepare import run_preparer
out, target = Path(sys.argv[1]), Path(sys.argv[1]) / sys.argv[2]
replace = os.replace
def killed(src, dst):
    if Path(dst) == target:
        os._exit(137)
    replace(src, dst)
os.replace = killed
run_preparer("synth", None, out, num_utts=8, seed=2, noise_snr=None)
"""


def failing_rerun(out: Path, monkeypatch) -> None:
    """A rerun whose every synthesis fails: it writes nothing, only mends."""
    with monkeypatch.context() as patched:
        patched.setattr(synth_module, "engine_command", lambda r: ["sh", "-c", "exit 3"])
        assert run_preparer("synth", None, out, num_utts=6, seed=1,
                            noise_snr=None).total_kept == 0


@needs_engine
@pytest.mark.parametrize("killed_at", ["wav/dev", "wav/test/NOTES.txt", "test.jsonl"])
def test_a_run_killed_in_the_commit_is_undone_by_the_next(tmp_path: Path, monkeypatch,
                                                          killed_at):
    """SIGKILL at a rename: in the swap, amid moving the user's files, amid the manifests'
    renames. Without the commit mark the next run puts back the old manifests and audio."""
    run_preparer("synth", None, tmp_path, num_utts=12, seed=0, noise_snr=None)
    (tmp_path / "wav" / "test" / "NOTES.txt").write_text("mine")
    before = corpus_bytes(tmp_path)
    killed = subprocess.run([sys.executable, "-c", KILLED_AT, str(tmp_path), killed_at],
                            check=False)
    assert killed.returncode == 137
    failing_rerun(tmp_path, monkeypatch)
    after = corpus_bytes(tmp_path)
    assert after == before
    assert_manifests_match_their_audio(tmp_path)


@needs_engine
def test_a_run_killed_after_its_commit_point_stays_and_its_leftovers_go(tmp_path: Path,
                                                                        monkeypatch):
    run_preparer("synth", None, tmp_path, num_utts=12, seed=0, noise_snr=None)
    script = KILLED_AT.replace("replace = os.replace", "replace = os.replace\n"
                               "from asrkit.data.prepare.synth import swap\n"
                               "def commit(out):\n"
                               "    (out / swap.REPLACED / swap.COMMITTED).touch()\n"
                               "    os._exit(137)\n"
                               "swap.committed = commit\n"
                               "import asrkit.data.prepare.synth as synth\n"
                               "synth.committed = commit")
    killed = subprocess.run([sys.executable, "-c", script, str(tmp_path), "nothing"],
                            check=False)
    assert killed.returncode == 137 and (tmp_path / "wav" / ".replaced").is_dir()
    failing_rerun(tmp_path, monkeypatch)
    assert_manifests_match_their_audio(tmp_path)
    assert len(read_manifest(tmp_path / "train.jsonl")) == 5  # seed 2's 8 utterances
    assert not list(tmp_path.glob(".*.jsonl.*"))


CUT_SHORT = """
import os, shutil, sys
from pathlib import Path
from asrkit.data.prepare import run_preparer
rmtree = shutil.rmtree
def cut_short(path, *args, **kwargs):  # the commit mark goes first, then the process dies
    mark = Path(path) / ".committed"
    if mark.exists():
        mark.unlink()
        os._exit(137)
    rmtree(path, *args, **kwargs)
shutil.rmtree = cut_short
run_preparer("synth", None, Path(sys.argv[1]), num_utts=8, seed=2, noise_snr=None)
"""


@needs_engine
def test_a_run_killed_while_deleting_the_old_audio_keeps_the_new_corpus(tmp_path: Path,
                                                                        monkeypatch):
    """Deleting the old audio lists its directory's entries in any order: the commit mark
    may go first. The old audio is renamed out of recover's way before it is deleted."""
    run_preparer("synth", None, tmp_path, num_utts=12, seed=0, noise_snr=None)
    killed = subprocess.run([sys.executable, "-c", CUT_SHORT, str(tmp_path)], check=False)
    assert killed.returncode == 137
    failing_rerun(tmp_path, monkeypatch)
    assert_manifests_match_their_audio(tmp_path)
    assert len(read_manifest(tmp_path / "train.jsonl")) == 5  # seed 2's 8 utterances


@needs_engine
def test_a_killed_run_s_manifest_that_had_no_old_one_is_removed(tmp_path: Path, monkeypatch):
    run_preparer("synth", None, tmp_path, num_utts=12, seed=0, noise_snr=None)
    (tmp_path / "test.jsonl").unlink()  # the user removed it; wav/test stays
    before = corpus_bytes(tmp_path)
    killed = subprocess.run([sys.executable, "-c", KILLED_AT, str(tmp_path),
                             "test_unseen.jsonl"], check=False)
    assert killed.returncode == 137 and (tmp_path / "test.jsonl").exists()
    failing_rerun(tmp_path, monkeypatch)
    after = corpus_bytes(tmp_path)
    assert after == before and not (tmp_path / "test.jsonl").exists()
    assert not list(tmp_path.glob(".*"))


@needs_engine
def test_a_commit_mark_that_cannot_be_made_undoes_the_run(tmp_path: Path, monkeypatch):
    run_preparer("synth", None, tmp_path, num_utts=12, seed=0, noise_snr=None)
    before = corpus_bytes(tmp_path)

    def no_mark(out):
        raise OSError(5, "Input/output error")

    with monkeypatch.context() as patched:
        patched.setattr(synth_package, "committed", no_mark)
        with pytest.raises(OSError, match="Input/output error"):
            run_preparer("synth", None, tmp_path, num_utts=8, seed=2, noise_snr=None)
    after = corpus_bytes(tmp_path)
    assert after == before
    assert_manifests_match_their_audio(tmp_path)
    assert not list(tmp_path.glob(".*")) and sorted(
        p.name for p in (tmp_path / "wav").iterdir()) == [
        ".prepare.lock", "dev", "test", "test_unseen", "train"]


@needs_engine
def test_a_second_run_on_the_same_out_is_refused(tmp_path: Path, capsys):
    import fcntl

    (tmp_path / "wav").mkdir()
    with open(tmp_path / "wav" / ".prepare.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running prepare holds it
        assert prepare_main(["synth", "--out", str(tmp_path), "--num-utts", "6"]) == 2
    assert capsys.readouterr().err == (
        f"asrkit prepare synth: --out: {tmp_path} is in use by another asrkit prepare synth; "
        f"wait for it to finish or prepare into another directory\n")
    assert sorted(p.name for p in (tmp_path / "wav").iterdir()) == [".prepare.lock"]


@needs_engine
def test_an_undo_that_fails_too_keeps_the_old_audio_for_the_next_run(tmp_path: Path,
                                                                     monkeypatch):
    run_preparer("synth", None, tmp_path, num_utts=12, seed=0, noise_snr=None)
    before = corpus_bytes(tmp_path)
    replace, failed = os.replace, []

    def fails_twice(src, dst):  # test.jsonl's rename, then the undo's first swap back
        if Path(dst) == tmp_path / "test.jsonl" and not failed or \
                Path(dst).parent == tmp_path / "wav" / ".partial" and len(failed) == 1:
            failed.append(dst)
            raise OSError(5, "Input/output error")
        replace(src, dst)

    with monkeypatch.context() as patched:
        patched.setattr(os, "replace", fails_twice)
        with pytest.raises(OSError):
            run_preparer("synth", None, tmp_path, num_utts=8, seed=2, noise_snr=None)
    assert len(failed) == 2 and (tmp_path / "wav" / ".replaced").is_dir()
    failing_rerun(tmp_path, monkeypatch)
    after = corpus_bytes(tmp_path)
    assert after == before


@needs_engine
def test_after_the_commit_a_failed_clean_up_is_a_warning(tmp_path: Path, monkeypatch, caplog):
    run_preparer("synth", None, tmp_path, num_utts=12, seed=0, noise_snr=None)
    rmtree = shutil.rmtree

    def fails_on_replaced(path, *args, **kwargs):
        if Path(path).name.startswith(".removing-"):  # the old audio, renamed to be deleted
            raise OSError(5, "Input/output error", str(path))
        rmtree(path, *args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(shutil, "rmtree", fails_on_replaced)
        assert prepare_main(["synth", "--out", str(tmp_path), "--num-utts", "8", "--seed", "2",
                             "--noise-snr", "off"]) == 0
    assert "the new corpus is in place, but" in caplog.text
    assert "could not be removed (Input/output error); the next run removes it" in caplog.text
    failing_rerun(tmp_path, monkeypatch)
    assert_manifests_match_their_audio(tmp_path)
    assert len(read_manifest(tmp_path / "train.jsonl")) == 5


@needs_engine
def test_a_full_disk_in_the_swap_is_exit_1_naming_the_directory(tmp_path: Path, monkeypatch,
                                                                capsys):
    run_preparer("synth", None, tmp_path, num_utts=12, seed=0, noise_snr=None)
    with on_rename_to(monkeypatch, tmp_path / "wav" / ".replaced" / "dev",
                      raising(OSError(28, "No space left on device"))):
        assert prepare_main(["synth", "--out", str(tmp_path), "--num-utts", "8", "--seed", "2",
                             "--noise-snr", "off"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"asrkit prepare synth: {tmp_path / 'wav' / 'dev'}: could not be "
                          f"written (") and err.endswith("No space left on device\n")
    assert_manifests_match_their_audio(tmp_path)


@pytest.mark.parametrize("kind", ["directory", "symlink"])
def test_an_entry_named_as_synth_audio_is_refused_before_synthesis(tmp_path: Path, capsys,
                                                                   kind):
    (tmp_path / "wav" / "train").mkdir(parents=True)
    if kind == "directory":
        (tmp_path / "wav" / "train" / "train-000001.wav").mkdir()
    else:
        (tmp_path / "mine.wav").write_bytes(b"RIFF")
        (tmp_path / "wav" / "train" / "train-000001.wav").symlink_to(tmp_path / "mine.wav")
    assert prepare_main(["synth", "--out", str(tmp_path), "--num-utts", "6"]) == 2
    assert capsys.readouterr().err == (
        f"asrkit prepare synth: --out: {tmp_path / 'wav' / 'train' / 'train-000001.wav'} is "
        f"named as synth's audio but is not a file it could have written; rename it or move "
        f"it out\n")
    assert (tmp_path / "wav" / "train" / "train-000001.wav").exists()


def test_options_refused_leave_the_directory_alone(tmp_path: Path, capsys):
    """Another run's staging is not this run's to remove when this run does not start."""
    (tmp_path / "wav" / ".partial" / "train").mkdir(parents=True)
    (tmp_path / "wav" / ".partial" / "train" / "train-000000.wav").write_bytes(b"RIFF")
    assert prepare_main(["synth", "--out", str(tmp_path), "--nj", "0"]) == 2
    assert "--nj must be at least 1" in capsys.readouterr().err
    assert (tmp_path / "wav" / ".partial" / "train" / "train-000000.wav").read_bytes() == b"RIFF"


@needs_engine
def test_a_split_directory_that_is_a_symlink_is_refused(tmp_path: Path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "out" / "wav").mkdir(parents=True)
    (tmp_path / "out" / "wav" / "train").symlink_to(elsewhere)
    assert prepare_main(["synth", "--out", str(tmp_path / "out"), "--num-utts", "6"]) == 2
    assert capsys.readouterr().err == (
        f"asrkit prepare synth: --out: {tmp_path / 'out' / 'wav' / 'train'} is a symbolic link; "
        f"a run replaces wav/<split> as a whole: point --out at the other disk instead\n")
    assert (tmp_path / "out" / "wav" / "train").is_symlink()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["wav"]


@needs_engine
@pytest.mark.parametrize("failing", ["wav/dev", "test.jsonl"])
def test_a_failed_rename_puts_back_the_manifests_and_audio_as_they_were(tmp_path: Path,
                                                                        monkeypatch, failing):
    run_preparer("synth", None, tmp_path, num_utts=12, seed=0, noise_snr=None)
    before = corpus_bytes(tmp_path)
    # after train's audio or train's and dev's manifests went in; the undo's renames work
    error = OSError(5, "Input/output error")
    with on_rename_to(monkeypatch, tmp_path / failing, raising(error), once=True), \
            pytest.raises(OSError, match="Input/output error"):
        run_preparer("synth", None, tmp_path, num_utts=8, seed=2, noise_snr=None)
    after = corpus_bytes(tmp_path)
    assert after == before
    assert_manifests_match_their_audio(tmp_path)
