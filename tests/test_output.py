"""Output safety (sepgen.output): what may be replaced, what never is, atomicity and permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from sepgen import output
from sepgen.cli import main
from sepgen.errors import OutputRefused
from sepgen.frontends.numpy import save_npz_model

from test_bad_inputs import SHAPE, snapshot, tiny_spec


@pytest.fixture
def user(tmp_path, monkeypatch) -> Path:
    spec, arrays = tiny_spec()
    save_npz_model(tmp_path / "tiny.npz", spec, arrays)
    np.save(tmp_path / "cal.npy", np.random.default_rng(2).normal(size=(8,) + SHAPE).astype(np.float32))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def generate(*extra: str) -> int:
    return main(["generate", "tiny.npz", "--calibration", "cal.npy", "--quiet", *extra])


def hidden_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_regenerating_replaces_own_output_and_follows_umask(user):
    old = os.umask(0o027)
    try:
        assert generate("-o", "out") == 0
        first = snapshot(user / "out")
        assert stat.S_IMODE((user / "out").stat().st_mode) == 0o750  # not mkdtemp's 0700
        assert all(stat.S_IMODE((user / "out" / n).stat().st_mode) == 0o640 for n in os.listdir(user / "out"))
        assert generate("-o", "out") == 0  # our own, unchanged output: replaced without --force
    finally:
        os.umask(old)
    assert snapshot(user / "out") == first  # byte-identical regeneration
    assert hidden_leftovers(user) == []


def test_manifest_lists_every_file_with_its_digest(user):
    assert generate("-o", "out", "--prefix", "kws") == 0
    name, files = output.manifest_of(user / "out")
    assert name == "kws.sepgen.json"
    assert set(files) == set(os.listdir(user / "out")) - {name}
    for file, digest in files.items():
        assert output.sha256((user / "out" / file).read_bytes()) == digest


def test_edited_file_needs_force_and_foreign_file_is_never_deleted(user, capsys):
    assert generate("-o", "out") == 0
    (user / "out" / "model.c").write_text("/* my edit */\n")
    assert generate("-o", "out") == 2
    assert "changed since" in capsys.readouterr().err
    assert (user / "out" / "model.c").read_text() == "/* my edit */\n"
    assert generate("-o", "out", "--force") == 0
    assert "my edit" not in (user / "out" / "model.c").read_text()
    (user / "out" / "notes.md").write_text("keep me")
    assert generate("-o", "out", "--force") == 2
    assert "notes.md" in capsys.readouterr().err
    assert (user / "out" / "notes.md").read_text() == "keep me"


def test_empty_directory_and_symlink_to_it_are_written(user):
    (user / "empty").mkdir()
    os.symlink("empty", user / "link")
    assert generate("-o", "link") == 0
    assert (user / "link").is_symlink() and (user / "empty" / "model.c").is_file()
    assert generate("-o", "link") == 0  # again through the link: our own output
    assert (user / "link").is_symlink()


def test_interrupted_swap_restores_previous_output(user, monkeypatch):
    """If moving the new directory into place fails (e.g. KeyboardInterrupt), the old output comes back whole
    and no hidden temporary directory is left behind."""
    assert generate("-o", "out") == 0
    before = snapshot(user / "out")
    real_replace = os.replace
    calls = []

    def failing_replace(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # the second move: new output into place
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(output.os, "replace", failing_replace)
    with pytest.raises(KeyboardInterrupt):
        output.write_directory(user / "out", {"model.sepgen.json": b'{"format": "sepgen-graph"}', "x.c": b""},
                               "model.sepgen.json")
    monkeypatch.setattr(output.os, "replace", real_replace)
    assert snapshot(user / "out") == before
    assert hidden_leftovers(user) == []


def test_signals_are_held_during_the_swap():
    import signal

    with output._signals_held():
        assert signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_report_html_overwrites_only_its_own_report(user, capsys):
    assert generate("-o", "out") == 0
    assert main(["report", "out", "--html", "r.html"]) == 0
    assert main(["report", "out", "--html", "r.html"]) == 0  # recognised as sepgen's report
    (user / "page.html").write_text("<html>mine</html>")
    assert main(["report", "out", "--html", "page.html"]) == 2
    assert (user / "page.html").read_text() == "<html>mine</html>"
    assert main(["report", "out", "--html", "page.html", "--force"]) == 0
    assert "sepgen budget" in (user / "page.html").read_text()
    assert hidden_leftovers(user) == []


def test_simulate_writes_exactly_the_path_given_and_reruns(user):
    assert generate("-o", "out") == 0
    np.save(user / "x.npy", np.zeros((2,) + SHAPE, np.int8))
    assert main(["simulate", "out", "--input", "x.npy", "--output", "y.out"]) == 0
    assert (user / "y.out").is_file() and not (user / "y.out.npy").exists()
    assert np.load(user / "y.out", allow_pickle=False).shape == (2, 3)
    assert main(["simulate", "out", "--input", "x.npy", "--output", "y.out"]) == 0  # its own earlier file


def test_write_file_refuses_symlink_and_directory(tmp_path):
    (tmp_path / "d").mkdir()
    os.symlink("d", tmp_path / "s")
    for target in ("d", "s"):
        with pytest.raises(OutputRefused):
            output.write_file(tmp_path / target, b"x", force=True)


def test_internal_error_keeps_traceback_and_exits_1(user, capsys, monkeypatch):
    import sepgen.api

    def boom(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(sepgen.api, "prepare", boom)
    assert generate("-o", "out") == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "simulated bug" in err and "bug in sepgen" in err
    monkeypatch.setattr(sepgen.api, "prepare", lambda *a, **k: (_ for _ in ()).throw(ValueError("plain")))
    assert generate("-o", "out") == 1  # a plain ValueError is a bug too, not a user error
    assert not (user / "out").exists()
