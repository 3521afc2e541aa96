"""The session guard in conftest.py sees a test that writes into the repository."""

from __future__ import annotations

import shutil
import subprocess

import pytest


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_guard_sees_changed_created_and_deleted_files(tmp_path, tree_state):
    state, changed = tree_state
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / ".gitignore").write_text("ignored/\n")
    for name in ("kept.txt", "edited.txt", "deleted.txt"):
        (tmp_path / name).write_text(name)
    subprocess.run(["git", "add", "."], cwd=tmp_path, check=True)
    before = state(tmp_path)
    assert set(before) == {".gitignore", "kept.txt", "edited.txt", "deleted.txt"}
    (tmp_path / "edited.txt").write_text("a test wrote here")
    (tmp_path / "deleted.txt").unlink()
    (tmp_path / "new.png").write_bytes(b"x")
    (tmp_path / "ignored").mkdir()
    (tmp_path / "ignored" / "artifact.png").write_bytes(b"x")
    assert changed(before, state(tmp_path)) == ["deleted.txt", "edited.txt", "new.png"]


def test_guard_is_quiet_outside_git(tmp_path, tree_state, monkeypatch):
    state, _ = tree_state
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert state(tmp_path) is None
