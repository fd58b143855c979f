import json

import pytest

from asrkit.data.manifest import ManifestError, Utterance, read_manifest, write_manifest


def test_round_trip_resolves_relative_audio(tmp_path):
    utts = [
        Utterance("a1", "wav/a1.wav", 1.25, "hello world", "spk1"),
        Utterance("a2", "/abs/a2.flac", 2.5, "more text", "spk2", start=0.5, end=3.0),
    ]
    assert write_manifest(tmp_path / "m.jsonl", utts) == 2
    lines = (tmp_path / "m.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == {"id": "a1", "audio": "wav/a1.wav", "duration": 1.25,
                                    "text": "hello world", "speaker": "spk1"}
    assert json.loads(lines[1])["start"] == 0.5
    back = read_manifest(tmp_path / "m.jsonl")
    assert back[0].audio == str(tmp_path / "wav/a1.wav")
    assert back[1] == utts[1]


@pytest.mark.parametrize("record,message", [
    ({"audio": "a.wav", "duration": 1.0, "text": "t", "speaker": "s"}, "missing key 'id'"),
    ({"id": "x", "audio": "a.wav", "duration": "1", "text": "t", "speaker": "s"}, "key 'duration'"),
    ({"id": "x", "audio": "a.wav", "duration": 0, "text": "t", "speaker": "s"}, "'duration' must be > 0"),
    ({"id": "x y", "audio": "a.wav", "duration": 1, "text": "t", "speaker": "s"}, "without whitespace"),
    ({"id": "x", "audio": "a.wav", "duration": 1, "text": "t", "speaker": "s", "txt": 1}, "unknown key"),
    ({"id": "x", "audio": "a.wav", "duration": 1, "text": "t", "speaker": "s", "start": 2, "end": 1},
     "'end' (1) must exceed"),
    ({"id": "x", "audio": "a.wav", "duration": float("nan"), "text": "t", "speaker": "s"},
     "key 'duration' has bad value nan"),
    ({"id": "x", "audio": "a.wav", "duration": 1, "text": "t", "speaker": "s",
      "end": float("inf")}, "key 'end' has bad value inf"),
    ({"id": "x", "audio": "a.wav", "duration": 1, "text": "t", "speaker": "s", "start": True},
     "key 'start' has bad value True"),
    ({"id": "x", "audio": "a.wav", "duration": 1, "text": "one\ntwo", "speaker": "s"},
     "key 'text' holds a line break ('\\n')"),
    ({"id": "x", "audio": "a.wav", "duration": 1, "text": "one\u2028two", "speaker": "s"},
     "key 'text' holds a line break ('\\u2028')"),
])
def test_bad_lines_name_file_line_and_key(tmp_path, record, message):
    good = {"id": "ok", "audio": "a.wav", "duration": 1.0, "text": "t", "speaker": "s"}
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    assert f"{path}:2" in str(err.value) and message in str(err.value)


def test_duplicate_ids_and_bad_json(tmp_path):
    line = json.dumps({"id": "x", "audio": "a.wav", "duration": 1.0, "text": "t", "speaker": "s"})
    (tmp_path / "dup.jsonl").write_text(line + "\n" + line + "\n")
    with pytest.raises(ManifestError, match="dup.jsonl:2: duplicate id 'x' \\(first on line 1\\)"):
        read_manifest(tmp_path / "dup.jsonl")
    (tmp_path / "broken.jsonl").write_text("{not json\n")
    with pytest.raises(ManifestError, match="broken.jsonl:1: not valid JSON"):
        read_manifest(tmp_path / "broken.jsonl")


def test_every_line_break_of_splitlines_is_refused_and_a_tab_is_not(tmp_path):
    from asrkit.data.manifest import LINE_BREAKS

    breaks = {c for c in map(chr, range(0x3000)) if len(f"a{c}b".splitlines()) == 2}
    assert breaks == set(LINE_BREAKS)
    path = tmp_path / "tab.jsonl"
    record = {"id": "x", "audio": "a.wav", "duration": 1.0, "text": "a\tb", "speaker": "s"}
    path.write_text(json.dumps(record) + "\n")
    assert read_manifest(path)[0].text == "a\tb"


def test_a_non_finite_number_is_not_written(tmp_path):
    path = tmp_path / "m.jsonl"
    write_manifest(path, [Utterance("a", "a.wav", 1.0, "t", "s")])
    with pytest.raises(ManifestError, match="m.jsonl: utterance 'b' has a non-finite number"):
        write_manifest(path, [Utterance("b", "b.wav", float("nan"), "t", "s")])
    assert [u.id for u in read_manifest(path)] == ["a"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "m.jsonl"
    write_manifest(path, [Utterance("a", "a.wav", 1.0, "t", "s")])

    def broken():
        yield Utterance("b", "b.wav", 1.0, "t", "s")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_manifest(path, broken())
    assert [u.id for u in read_manifest(path)] == ["a"]
    assert list(tmp_path.iterdir()) == [path]


def test_non_utf8_line_names_file_and_line(tmp_path):
    good = json.dumps({"id": "x", "audio": "a.wav", "duration": 1.0, "text": "t", "speaker": "s"})
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(good.encode() + b"\n" + good.replace('"t"', '"caf\xe9"').encode("latin-1") + b"\n")
    with pytest.raises(ManifestError, match=r"latin1.jsonl:2: not UTF-8 text \(byte 0xe9 at byte \d+ "
                                            r"of the line: invalid continuation byte\)"):
        read_manifest(path)


@pytest.mark.parametrize("failing", ["b.jsonl", "c.jsonl"])
def test_write_manifests_is_all_or_none_when_a_rename_fails(tmp_path, monkeypatch, failing):
    import os

    from asrkit.data.manifest import write_manifests

    old = [Utterance("u1", "old.wav", 1.0, "old", "s")]
    new = [Utterance("u1", "new.wav", 2.0, "new", "s")]
    write_manifest(tmp_path / "a.jsonl", old)
    write_manifest(tmp_path / "b.jsonl", old)  # c.jsonl does not exist yet
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    replace, calls = os.replace, []

    def fails(src, dst):
        if os.path.basename(dst) == failing and not calls:
            calls.append(dst)
            raise OSError(5, "Input/output error")
        replace(src, dst)

    undone = []
    monkeypatch.setattr(os, "replace", fails)
    with pytest.raises(OSError, match=rf"{failing}.*Input/output error"):
        write_manifests({tmp_path / name: new for name in ("a.jsonl", "b.jsonl", "c.jsonl")},
                        before_rename=lambda: lambda: undone.append("undo"))
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing left over
    assert undone == ["undo"]  # what before_rename did is undone too
    assert write_manifests({tmp_path / "a.jsonl": new, tmp_path / "c.jsonl": new}) == [1, 1]
    assert [u.text for name in ("a", "b", "c")
            for u in read_manifest(tmp_path / f"{name}.jsonl")] == ["new", "old", "new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "b.jsonl", "c.jsonl"]


def test_each_manifest_path_names_a_whole_manifest_at_every_moment(tmp_path, monkeypatch):
    """A reader (a training run starting) never finds a manifest missing while several are
    rewritten: the old file stays at its path until the new one replaces it."""
    import os

    from asrkit.data.manifest import write_manifests

    paths = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    for path in paths:
        write_manifest(path, [Utterance("u1", "old.wav", 1.0, "old", "s")])
    replace, seen = os.replace, []

    def checking(src, dst):
        seen.append([read_manifest(path)[0].text for path in paths])
        replace(src, dst)

    monkeypatch.setattr(os, "replace", checking)
    write_manifests({path: [Utterance("u1", "new.wav", 1.0, "new", "s")] for path in paths})
    monkeypatch.undo()
    assert seen == [["old", "old"], ["new", "old"]]
    assert [read_manifest(path)[0].text for path in paths] == ["new", "new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "b.jsonl"]
