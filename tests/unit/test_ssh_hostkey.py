"""hoopd's SSH host key: ed25519, 0600, made once and then the same every start."""

from __future__ import annotations

import threading
from pathlib import Path

import asyncssh
import pytest

from hoopd.protocols.ssh.hostkey import host_key_path, load_or_create_host_key


def test_generated_once_private_and_stable(tmp_path: Path) -> None:
    first = load_or_create_host_key(tmp_path)
    path = host_key_path(tmp_path)
    assert path == tmp_path / "ssh" / "host_ed25519_key"
    assert first.algorithm == b"ssh-ed25519"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    again = load_or_create_host_key(tmp_path)
    assert again.export_public_key() == first.export_public_key()
    public = path.with_name(path.name + ".pub").read_bytes()
    assert public == first.export_public_key()


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    keys: list[bytes] = []
    threads = [
        threading.Thread(
            target=lambda: keys.append(load_or_create_host_key(tmp_path).export_public_key())
        )
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(keys)) == 1


def test_a_file_that_is_not_a_key_is_an_error_not_a_new_key(tmp_path: Path) -> None:
    path = host_key_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("not a key\n")
    with pytest.raises(asyncssh.KeyImportError):
        load_or_create_host_key(tmp_path)
    assert path.read_text() == "not a key\n"
