"""The device key: created mode 0600 from the first byte, refused when unsafe or not Ed25519."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edge_agent.identity import IdentityError, create_key, load_key, load_or_create_key


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that would make new files world-readable, to show we do not rely on it."""
    old = os.umask(0)
    yield
    os.umask(old)


@pytest.mark.usefixtures("open_umask")
def test_a_new_key_is_owner_only_even_with_an_open_umask(tmp_path: Path) -> None:
    path = tmp_path / "device.key"

    key, created = load_or_create_key(path)

    assert created
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(path).public_key() == key.public_key()


def test_an_existing_key_is_loaded_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    first, _ = load_or_create_key(path)

    again, created = load_or_create_key(path)

    assert not created
    assert again.public_key() == first.public_key()


def test_create_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    create_key(path)
    before = path.read_bytes()

    with pytest.raises(IdentityError, match="already exists"):
        create_key(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_a_key_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "device.key"
    create_key(path)
    path.chmod(mode)

    with pytest.raises(IdentityError, match=f"mode {mode:04o}.*chmod 600"):
        load_key(path)


def test_a_key_that_is_not_ed25519_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(other)
    path.chmod(0o600)

    with pytest.raises(IdentityError, match="not an Ed25519 device key"):
        load_key(path)


def test_garbage_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    path.write_bytes(b"not a key")
    path.chmod(0o600)

    with pytest.raises(IdentityError, match="not an Ed25519 device key"):
        load_key(path)


def test_a_symlinked_key_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real.key"
    create_key(real)
    link = tmp_path / "device.key"
    link.symlink_to(real)

    with pytest.raises(IdentityError, match="symbolic link"):
        load_or_create_key(link)


def test_a_missing_key_says_to_install(tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="edge-agent install"):
        load_key(tmp_path / "device.key")
