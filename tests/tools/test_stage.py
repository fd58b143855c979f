"""tools/stage.sh: a finished stage reruns (with its dependants) when what it depended on
changed, says why in one line, and is skipped when nothing changed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A three-stage toy recipe: stage 0 writes its option, stage 1 copies it, stage 2 counts.
RECIPE = """#!/usr/bin/env bash
set -euo pipefail
stage=0; stop_stage=2; force=false; size=10; beam=4; nj=1
. "{root}/tools/parse_options.sh"
. "{root}/tools/stage.sh"
cd "{work}"
markers=.stages
moved() {{ echo "hook ran for $1" >> hooks.log; }}
append() {{ echo "$1" >> "$2"; }}
run_stage 0 "make" append "size=$size" s0.log --nj "$nj"
on_rerun="moved 1" run_stage 1 "copy" append "copy" s1.log
run_stage 2 "count" append "beam=$beam" s2.log
"""


def make_recipe(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    script = tmp_path / "recipe.sh"
    script.write_text(RECIPE.format(root=ROOT, work=work))
    script.chmod(0o755)
    return script


def run(script: Path, *options: str) -> str:
    out = subprocess.run(["bash", str(script), *options], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_unchanged_options_skip_every_stage(tmp_path):
    script = make_recipe(tmp_path)
    run(script)
    again = run(script)
    for n, name in enumerate(["make", "copy", "count"]):
        assert f"== stage {n} ({name}): already done with these options, skipping" in again
    work = tmp_path / "work"
    assert lines(work / "s0.log") == ["size=10"] and lines(work / "s1.log") == ["copy"]
    assert lines(work / "s2.log") == ["beam=4"] and not (work / "hooks.log").exists()


def test_changed_option_reruns_its_stage_and_the_stages_after(tmp_path):
    script = make_recipe(tmp_path)
    run(script)
    out = run(script, "--size", "20")
    assert "== stage 0 (make): rerunning: its options changed (was: size=10; now: size=20)" in out
    assert "== stage 1 (copy): rerunning: an earlier stage's inputs changed" in out
    assert "== stage 2 (count): rerunning: an earlier stage's inputs changed" in out
    work = tmp_path / "work"
    assert lines(work / "s0.log") == ["size=10", "size=20"]
    assert lines(work / "s1.log") == ["copy", "copy"]
    assert lines(work / "s2.log") == ["beam=4", "beam=4"]
    assert lines(work / "hooks.log") == ["hook ran for 1"]  # the rerun hook, before stage 1


def test_a_late_option_reruns_only_its_stage(tmp_path):
    script = make_recipe(tmp_path)
    run(script)
    out = run(script, "--beam", "8")
    assert "== stage 0 (make): already done with these options" in out
    assert "== stage 1 (copy): already done with these options" in out
    assert "== stage 2 (count): rerunning: its options changed (was: beam=4; now: beam=8)" in out
    assert lines(tmp_path / "work" / "s2.log") == ["beam=4", "beam=8"]


def test_a_later_start_stage_reads_what_the_earlier_stages_left(tmp_path):
    """--stage 2 after changing a stage-0 option: stage 0 is not run, so stage 2's inputs are
    what it left (unchanged: stage 2 is skipped, and a line says the change waits); the
    full run afterwards reruns every stage over the new data, stage 2 included."""
    script = make_recipe(tmp_path)
    run(script)
    out = run(script, "--size", "30", "--stage", "2")
    assert ("== stage 0 (make): not run (--stage 2): its options changed (was: size=10; now: "
            "size=30) since it ran; the stages after it use what it left") in out
    assert "stage 1" not in out
    assert "== stage 2 (count): already done with these options" in out
    out = run(script, "--size", "30")
    for n, name in enumerate(["make", "copy", "count"]):
        assert f"== stage {n} ({name}): rerunning" in out
    work = tmp_path / "work"
    assert lines(work / "s0.log") == ["size=10", "size=30"]
    assert lines(work / "s2.log") == ["beam=4", "beam=4"]


def test_a_later_stage_sees_an_earlier_stage_rerun_on_its_own(tmp_path):
    """Stage 0 rerun alone (--stop_stage 0), then --stage 2: stage 2 reads stage 0's new
    output (as training reads the corpus), so it reruns, though stage 1 is not run (one
    line says stage 1 is behind); the full run after it reruns stage 1 and, since stage 1's
    output changed after stage 2 ran, stage 2 again."""
    script = make_recipe(tmp_path)
    run(script)
    run(script, "--size", "30", "--stop_stage", "0")
    out = run(script, "--size", "30", "--stage", "2")
    assert ("== stage 1 (copy): not run (--stage 2): an earlier stage's inputs changed since "
            "it ran; the stages after it use what it left") in out
    assert "== stage 2 (count): rerunning: an earlier stage's inputs changed" in out
    out = run(script, "--size", "30")
    assert "== stage 0 (make): already done with these options" in out
    assert "== stage 1 (copy): rerunning: an earlier stage's inputs changed" in out
    assert "== stage 2 (count): rerunning: an earlier stage's inputs changed" in out
    assert lines(tmp_path / "work" / "s2.log") == ["beam=4"] * 3
    out = run(script, "--size", "30")
    assert out.count("already done with these options") == 3


def test_stage_numbers_are_checked(tmp_path):
    script = make_recipe(tmp_path)
    for options, message in ((("--stage", "abc"), "--stage must be a whole number, got 'abc'"),
                             (("--stop_stage", "two"), "--stop_stage must be a whole number, got 'two'"),
                             (("--stage", "2", "--stop_stage", "1"),
                              "--stage 2 is after --stop_stage 1: no stage to run")):
        out = subprocess.run(["bash", str(script), *options], capture_output=True, text=True,
                             check=False)
        assert out.returncode == 2 and out.stdout == ""
        assert out.stderr == f"recipe.sh: {message}\n"
    assert not (tmp_path / "work" / ".stages").exists()


def test_job_count_is_not_an_input_and_force_redoes(tmp_path):
    script = make_recipe(tmp_path)
    run(script)
    out = run(script, "--nj", "8")
    assert "== stage 0 (make): already done with these options" in out
    out = run(script, "--force", "true", "--stage", "1", "--stop_stage", "1")
    assert "== stage 1 (copy): done before, redoing it (--force true)" in out
    assert lines(tmp_path / "work" / "s1.log") == ["copy", "copy"]
    assert lines(tmp_path / "work" / "hooks.log") == ["hook ran for 1"]


def test_a_failed_stage_leaves_no_marker(tmp_path):
    script = make_recipe(tmp_path)
    text = script.read_text().replace('append "copy" s1.log', 'false')
    script.write_text(text)
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    assert out.returncode == 1 and "== stage 1 (copy): FAILED" in out.stderr
    assert not (tmp_path / "work" / ".stages" / "stage_1.done").exists()
    assert (tmp_path / "work" / ".stages" / "stage_0.done").exists()


def test_a_stage_function_fails_at_its_first_failing_command(tmp_path):
    """A stage that is a shell function whose last command succeeds: it fails all the same
    (bash runs a function called as `if ! f` with -e off), and its later commands do not run."""
    script = make_recipe(tmp_path)
    text = script.read_text().replace('append "copy" s1.log', 'broken')
    text = text.replace('run_stage 0', 'broken() { false; echo after >> after.log; }\nrun_stage 0')
    script.write_text(text)
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    assert out.returncode == 1 and "== stage 1 (copy): FAILED" in out.stderr
    assert not (tmp_path / "work" / "after.log").exists()
    assert not (tmp_path / "work" / ".stages" / "stage_1.done").exists()


def test_a_start_after_the_last_stage_is_refused(tmp_path):
    script = make_recipe(tmp_path)
    script.write_text(script.read_text().replace("nj=1", "nj=1; last_stage=2"))
    out = subprocess.run(["bash", str(script), "--stage", "3", "--stop_stage", "9"],
                         capture_output=True, text=True, check=False)
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr == "recipe.sh: --stage 3: no stage to run (the stages are 0-2)\n"


def test_relative_path_options_are_from_the_current_directory(tmp_path):
    script = tmp_path / "paths.sh"
    script.write_text(f'''#!/usr/bin/env bash
set -euo pipefail
data=default/data; out=default/out; name=x; path_options="data out"
. "{ROOT}/tools/parse_options.sh"
cd /
printf '%s\\n' "$data" "$out" "$name"
''')
    (tmp_path / "here").mkdir()
    out = subprocess.run(["bash", str(script), "--data", "corpus", "--out=/abs/o", "--name",
                          "n/m"], capture_output=True, text=True, check=True,
                         cwd=tmp_path / "here")
    assert out.stdout.splitlines() == [f"{tmp_path}/here/corpus", "/abs/o", "n/m"]
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["default/data", "default/out", "x"]  # defaults as set


@pytest.mark.parametrize("option, message", [
    (("--gpus", "two"), "--gpus must be a whole number (0: the CPU), got 'two'"),
    (("--nj", "0"), "--nj must be a whole number >= 1, got '0'"),
    (("--force", "yes"), "--force must be true or false, got 'yes'"),
    (("--exp", "a\\b"), ("--exp 'a\\b' holds a backslash or '${', which a Hydra override "
                         "cannot carry")),
])
def test_recipes_refuse_bad_shared_options_first(tmp_path, option, message):
    out = subprocess.run(["bash", str(ROOT / "recipes/synth/run.sh"), "--manifests",
                          str(tmp_path / "data"), *option], capture_output=True, text=True,
                         check=False)
    assert (out.returncode, out.stdout, out.stderr) == (2, "", f"run.sh: {message}\n")
    assert not (tmp_path / "data").exists()


def test_a_record_does_not_depend_on_the_virtualenv_or_a_moved_marker(tmp_path):
    """The asrkit command is recorded as .venv/bin/asrkit whichever virtualenv runs it, and a
    stage whose marker moved takes over the one at its old place when the record matches
    (markers written before the move are not made stale)."""
    work = tmp_path / "work"
    work.mkdir()
    for venv in ("a", "b"):
        (tmp_path / venv / "bin").mkdir(parents=True)
        tool = tmp_path / venv / "bin" / "asrkit"
        tool.write_text('#!/usr/bin/env bash\necho "$@" >> "$OUT"\n')
        tool.chmod(0o755)
    script = tmp_path / "venv.sh"
    script.write_text(f'''#!/usr/bin/env bash
set -euo pipefail
stage=0; stop_stage=1; force=false; nj=1; size=3
. "{ROOT}/tools/parse_options.sh"
root={ROOT}; . "{ROOT}/tools/asrkit_command.sh"
. "{ROOT}/tools/stage.sh"
cd "{work}"
export OUT={work}/calls.log
markers=.stages run_stage 0 "zero" "$asrkit" zero --size "$size"
markers=.stages/moved legacy_marker=.stages/old.done run_stage 1 "one" "$asrkit" one
''')

    def run_with(venv: str) -> str:
        env = {**os.environ, "ASRKIT_VENV": str(tmp_path / venv)}
        return subprocess.run(["bash", str(script)], capture_output=True, text=True,
                              check=True, env=env).stdout

    run_with("a")
    assert lines(work / "calls.log") == ["zero --size 3", "one"]
    (work / ".stages" / "moved" / "stage_1.done").rename(work / ".stages" / "old.done")
    out = run_with("b")
    assert "== stage 0 (zero): already done" in out and "== stage 1 (one): already done" in out
    assert lines(work / "calls.log") == ["zero --size 3", "one"]  # nothing ran again
    assert (work / ".stages" / "moved" / "stage_1.done").is_file()  # taken over


# Stage 1 "decodes" a list of methods; a run of more methods covers one of fewer.
COVERING = """#!/usr/bin/env bash
set -euo pipefail
stage=0; stop_stage=2; force=false; methods=a,b,c; beam=4
. "{root}/tools/parse_options.sh"
. "{root}/tools/stage.sh"
. "{root}/tools/decode_covers.sh"
cd "{work}"
markers=.stages
append() {{ echo "$1" >> "$2"; }}
run_stage 0 "make" append "beam=$beam" s0.log
covered_by=decode_covers run_stage 1 "decode" append "methods=[$methods]" s1.log \\
  "methods=[$methods]" "beam=$beam"
run_stage 2 "report" append "report" s2.log
"""


def test_a_decode_of_more_methods_covers_one_of_fewer(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    script = tmp_path / "recipe.sh"
    script.write_text(COVERING.format(root=ROOT, work=work))
    run(script)
    out = run(script, "--methods", "c,a")
    assert ("== stage 1 (decode): already done: its last run covers these options (was: "
            "methods=[a,b,c] methods=[a,b,c]; now: methods=[c,a] methods=[c,a]), skipping") in out
    assert "== stage 2 (report): already done with these options" in out  # what stage 1 left
    assert lines(work / "s1.log") == ["methods=[a,b,c]"]
    out = run(script, "--methods", "a,d")  # a method it did not decode
    assert "== stage 1 (decode): rerunning: its options changed" in out
    assert "== stage 2 (report): rerunning: an earlier stage's inputs changed" in out
    out = run(script, "--methods", "a", "--beam", "8")  # another option: not covered
    assert "== stage 1 (decode): rerunning: an earlier stage's inputs changed" in out
    assert lines(work / "s1.log") == ["methods=[a,b,c]", "methods=[a,d]", "methods=[a]"]


def covers(tmp_path: Path, old: list[str], new: list[str]) -> bool:
    files = []
    for name, record in (("old", old), ("new", new)):
        files.append(tmp_path / name)
        files[-1].write_text("".join(f"{line}\n" for line in ["after: 1f", *record]))
    script = f'. "{ROOT}/tools/decode_covers.sh"; decode_covers "$1" "$2"'
    return subprocess.run(["bash", "-c", script, "-", *map(str, files)],
                          check=False).returncode == 0


def test_decode_covers_needs_every_method_and_the_same_other_options(tmp_path):
    five = ["arg: methods=[ctc_greedy,ctc_prefix_beam,attention,attention_rescoring,joint]",
            "arg: beam=10", "arg: search.attention_rescoring.beam=20"]
    three = ["arg: methods=[ctc_greedy,attention_rescoring,joint]", "arg: beam=10",
             "arg: search.attention_rescoring.beam=20"]
    assert covers(tmp_path, five, three) and not covers(tmp_path, three, five)
    assert covers(tmp_path, five, ["arg: methods=[joint]", "arg: beam=10"])  # no rescoring
    assert not covers(tmp_path, five, [*three[:2], "arg: search.attention_rescoring.beam=30"])
    assert not covers(tmp_path, five, three[:2])  # rescoring at `beam` now, at 20 then
    assert not covers(tmp_path, five, [three[0], "arg: beam=8", three[2]])
    assert not covers(tmp_path, five, [three[0].replace("joint", "joint_x"), *three[1:]])
