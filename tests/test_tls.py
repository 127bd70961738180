"""The local CA for real: its files and their modes, leaves that verify (Python's ssl,
`openssl verify`, curl) through one SNI socket serving many names, refusals, and
`promenade trust` against a temp home, a temp system store and a temp NSS database."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from promenade_core.errors import PromenadeError
from promenade_core.tls.ca import ensure_ca, load_ca
from promenade_core.tls.leaf import LeafRefused, LeafStore
from tests.support.tls import tls_server

CERTUTIL = shutil.which("certutil")
OPENSSL = shutil.which("openssl")
CURL = shutil.which("curl")

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    data = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    monkeypatch.delenv("SUDO_USER", raising=False)
    yield data


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_the_ca_is_made_once_with_private_modes(data_home: Path) -> None:
    ca, made = ensure_ca()
    folder = data_home / "promenade" / "ca"
    assert made and ca.folder == folder
    assert _mode(folder) == 0o700
    assert _mode(folder / "ca.key") == 0o600
    assert _mode(folder / "ca.pem") == 0o644
    again, made_again = ensure_ca()
    assert not made_again and again.fingerprint == ca.fingerprint
    leaf = LeafStore(ca).get("api.myapp.localhost")
    assert leaf.path == folder / "leaves" / "api.myapp.localhost.pem"
    assert _mode(leaf.path) == 0o600 and _mode(leaf.path.parent) == 0o700


def test_a_group_readable_key_is_refused(data_home: Path) -> None:
    ca, _made = ensure_ca()
    (ca.folder / "ca.key").chmod(0o640)
    with pytest.raises(PromenadeError, match=r"ca.key is a private key readable or writable "
                       r"by other users \(mode 640\): refusing to trust it; if you made it, "
                       r"`chmod 600"):
        load_ca()


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_key_owned_by_someone_else_is_refused(data_home: Path) -> None:
    ca, _made = ensure_ca()
    os.chown(ca.folder / "ca.key", 65534, 65534)
    with pytest.raises(PromenadeError, match="belongs to uid 65534, not to you"):
        ensure_ca()


def test_a_key_replaced_by_a_symlink_is_refused(data_home: Path, tmp_path: Path) -> None:
    ca, _made = ensure_ca()
    key = ca.folder / "ca.key"
    (tmp_path / "elsewhere.key").write_bytes(key.read_bytes())
    key.unlink()
    key.symlink_to(tmp_path / "elsewhere.key")
    with pytest.raises(PromenadeError, match=r"ca\.key is a symbolic link: refusing"):
        load_ca()


def test_a_ca_folder_that_is_a_symlink_is_refused(data_home: Path, tmp_path: Path) -> None:
    (tmp_path / "other").mkdir(mode=0o700)
    (data_home / "promenade").mkdir(parents=True)
    (data_home / "promenade" / "ca").symlink_to(tmp_path / "other")
    with pytest.raises(PromenadeError, match="is a symbolic link: refusing to keep a CA"):
        ensure_ca()


def test_sudo_root_never_makes_the_users_ca(data_home: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    monkeypatch.setenv("SUDO_USER", "nobody")
    with pytest.raises(PromenadeError, match="refusing to create nobody's CA files as root"):
        ensure_ca()
    assert not (data_home / "promenade").exists()


def test_a_leaf_verifies_with_python_and_openssl(data_home: Path, tmp_path: Path) -> None:
    ca, _made = ensure_ca()
    leaf = LeafStore(ca).get("api.myapp.localhost")
    context = ssl.create_default_context(cafile=str(ca.cert_path))
    server = LeafStore(ca)  # a second store reads the cached leaf from disk
    assert server.get("api.myapp.localhost").path == leaf.path
    if OPENSSL is None:
        pytest.skip("openssl is not installed")
    cert_only = tmp_path / "leaf.pem"
    cert_only.write_text(leaf.path.read_text().split("-----BEGIN PRIVATE KEY-----")[0])
    result = subprocess.run([OPENSSL, "verify", "-CAfile", str(ca.cert_path), "-purpose",
                             "sslserver", "-verify_hostname", "api.myapp.localhost",
                             str(cert_only)], capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(": OK")
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_one_socket_serves_each_name_its_own_certificate(data_home: Path,
                                                         tmp_path: Path) -> None:
    ca, _made = ensure_ca()
    client = ssl.create_default_context(cafile=str(ca.cert_path))
    with tls_server(tmp_path, {"XDG_DATA_HOME": str(data_home)}) as port:
        for name in ("api.myapp.localhost", "web.myapp.localhost"):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                    client.wrap_socket(raw, server_hostname=name) as tls:
                cert = tls.getpeercert()
                assert cert is not None
                assert cert["subjectAltName"] == (("DNS", name),)
                tls.sendall(f"GET / HTTP/1.0\r\nHost: {name}\r\n\r\n".encode())
                assert f"hello from {name}".encode() in _read_all(tls)
        if CURL is not None:
            for name in ("api.myapp.localhost", "web.myapp.localhost"):
                out = subprocess.run(
                    [CURL, "-sS", "-v", "--cacert", str(ca.cert_path), "--resolve",
                     f"{name}:{port}:127.0.0.1", f"https://{name}:{port}/"],
                    capture_output=True, text=True, timeout=20)
                assert out.returncode == 0, out.stderr
                assert out.stdout == f"hello from {name}:{port}"
                assert f"subject: CN={name}" in out.stderr


def test_a_name_outside_the_constraints_fails_the_handshake(data_home: Path,
                                                            tmp_path: Path) -> None:
    ca, _made = ensure_ca()
    with pytest.raises(LeafRefused, match=r"'bank\.example' is outside this CA's name"):
        LeafStore(ca).get("bank.example")
    client = ssl.create_default_context(cafile=str(ca.cert_path))
    with tls_server(tmp_path, {"XDG_DATA_HOME": str(data_home)}) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
            client.wrap_socket(raw, server_hostname="bank.example")
        if CURL is not None:
            out = subprocess.run([CURL, "-sS", "--cacert", str(ca.cert_path), "--resolve",
                                  f"bank.example:{port}:127.0.0.1", f"https://bank.example:{port}/"],
                                 capture_output=True, text=True, timeout=20)
            assert out.returncode == 35 and "unrecognized name" in out.stderr
    assert not (ca.folder / "leaves" / "bank.example.pem").exists()


def _read_all(tls: ssl.SSLSocket) -> bytes:
    chunks = []
    while chunk := tls.recv(4096):
        chunks.append(chunk)
    return b"".join(chunks)


# -- promenade trust --------------------------------------------------------------------


def _trust_env(tmp_path: Path) -> dict[str, str]:
    home, store = tmp_path / "home", tmp_path / "store"
    (home / ".pki" / "nssdb").mkdir(parents=True)
    store.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "SUDO_USER"}
    env.update(HOME=str(home), XDG_DATA_HOME=str(tmp_path / "data"),
               PROMENADE_TRUST_SYSTEM_DIR=str(store),
               PROMENADE_TRUST_UPDATE=f"touch {tmp_path / 'refreshed'}")
    return env


def _promenade(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "promenade_cli", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def _nss_list(db: Path) -> str:
    assert CERTUTIL is not None
    return subprocess.run([CERTUTIL, "-L", "-d", f"sql:{db}"], capture_output=True,
                          text=True, timeout=20, check=True).stdout


@pytest.mark.skipif(CERTUTIL is None, reason="needs certutil (libnss3-tools)")
def test_promenade_trust_installs_shows_and_uninstalls(tmp_path: Path) -> None:
    env = _trust_env(tmp_path)
    db = tmp_path / "home" / ".pki" / "nssdb"
    subprocess.run([CERTUTIL, "-d", f"sql:{db}", "-N", "--empty-password"], check=True,
                   timeout=20)
    done = _promenade(env, "trust", "--name", "test")
    assert done.returncode == 0, done.stderr
    ca_pem = tmp_path / "data" / "promenade" / "ca" / "ca.pem"
    system_copy = tmp_path / "store" / f"promenade-{_user()}.crt"
    assert f"$ {CERTUTIL} -A -d sql:{db} -t C,, -n " in done.stdout  # said before it ran
    assert f"$ touch {tmp_path / 'refreshed'}" in done.stdout
    assert "it may sign only: localhost and *.localhost, test and *.test" in done.stdout
    assert system_copy.read_bytes() == ca_pem.read_bytes()
    assert _mode(system_copy) == 0o644 and (tmp_path / "refreshed").exists()
    assert "Promenade local CA" in _nss_list(db)

    shown = _promenade(env, "trust", "--show")
    assert shown.returncode == 0 and shown.stdout == f"{ca_pem}\n"
    assert "system store" in shown.stderr and "~/.pki/nssdb (Chromium): trusted" in shown.stderr

    wider = _promenade(env, "trust", "--name", "example-dev")
    assert wider.returncode == 1
    assert "permits only localhost, test, not example-dev" in wider.stderr
    assert "promenade trust --name test --name example-dev" in wider.stderr

    gone = _promenade(env, "trust", "--uninstall")
    assert gone.returncode == 0, gone.stderr
    assert "removed from ~/.pki/nssdb (Chromium)" in gone.stdout
    assert f"removing {system_copy}" in gone.stdout and f"deleted {ca_pem}" in gone.stdout
    assert "Promenade local CA" not in _nss_list(db)
    assert not system_copy.exists() and not ca_pem.exists()
    missing = _promenade(env, "trust", "--show")
    assert missing.returncode == 1 and "there is no local CA yet" in missing.stderr


def test_promenade_trust_without_certutil_says_how_to_get_it(tmp_path: Path) -> None:
    env = _trust_env(tmp_path)
    env["PATH"] = str(tmp_path / "empty-bin")  # no certutil, no touch: the refresh fails
    env["PROMENADE_TRUST_UPDATE"] = ""
    done = _promenade(env, "trust")
    assert done.returncode == 0, done.stderr
    assert "sudo apt install libnss3-tools" in done.stderr
    assert (tmp_path / "store" / f"promenade-{_user()}.crt").exists()


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


@pytest.fixture
def nobody_data() -> Iterator[Path]:
    """A data folder `nobody` owns, outside root's 0700 pytest folder."""
    folder = Path(tempfile.mkdtemp(prefix="promenade-tls-"))
    folder.chmod(0o755)
    data = folder / "data"
    data.mkdir()
    os.chown(data, 65534, 65534)
    yield data
    shutil.rmtree(folder)


@pytest.mark.skipif(os.geteuid() != 0, reason="the sudo path needs root")
def test_sudo_promenade_trust_makes_the_users_files_as_the_user(tmp_path: Path,
                                                                nobody_data: Path) -> None:
    """Under sudo only the system store is written as root; the CA is `$SUDO_USER`'s."""
    store = tmp_path / "store"
    store.mkdir()
    env = dict(os.environ, SUDO_USER="nobody", XDG_DATA_HOME=str(nobody_data),
               PROMENADE_TRUST_SYSTEM_DIR=str(store), PROMENADE_TRUST_UPDATE="")
    done = _promenade(env, "trust")
    assert done.returncode == 0, done.stderr
    folder = nobody_data / "promenade" / "ca"
    for path in (folder, folder / "ca.key", folder / "ca.pem"):
        assert path.lstat().st_uid == 65534, path
    assert _mode(folder / "ca.key") == 0o600
    system_copy = store / "promenade-nobody.crt"
    assert system_copy.lstat().st_uid == 0
    assert system_copy.read_bytes() == (folder / "ca.pem").read_bytes()
    assert "Promenade local CA (nobody@" in done.stdout
    shown = _promenade(env, "trust", "--show")
    assert shown.stdout == f"{folder / 'ca.pem'}\n" and ": trusted" in shown.stderr
    gone = _promenade(env, "trust", "--uninstall")
    assert gone.returncode == 0, gone.stderr
    assert not system_copy.exists() and not (folder / "ca.key").exists()


@pytest.mark.skipif(CERTUTIL is None, reason="needs certutil (libnss3-tools)")
def test_the_router_can_tell_whether_the_ca_is_trusted(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from promenade_core.tls.trust import trusted_anywhere

    env = _trust_env(tmp_path)
    for key in ("XDG_DATA_HOME", "PROMENADE_TRUST_SYSTEM_DIR", "PROMENADE_TRUST_UPDATE"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.delenv("SUDO_USER", raising=False)
    ca, _made = ensure_ca()
    home = tmp_path / "home"
    assert not trusted_anywhere(ca.cert_pem, ca.name, home, _user())
    assert _promenade(env, "trust").returncode == 0  # the system store only: no NSS db yet
    assert trusted_anywhere(ca.cert_pem, ca.name, home, _user())
    assert _promenade(env, "trust", "--uninstall").returncode == 0
    ca, _made = ensure_ca()
    assert not trusted_anywhere(ca.cert_pem, ca.name, home, _user())
    db = home / ".pki" / "nssdb"
    subprocess.run([CERTUTIL, "-d", f"sql:{db}", "-N", "--empty-password"], check=True,
                   timeout=20)
    assert _promenade(env, "trust", "--no-system").returncode == 0  # NSS only
    assert not (tmp_path / "store" / f"promenade-{_user()}.crt").exists()
    assert trusted_anywhere(ca.cert_pem, ca.name, home, _user())


def test_a_ca_folder_in_a_world_writable_folder_is_refused(data_home: Path) -> None:
    (data_home / "promenade").mkdir(parents=True)
    (data_home / "promenade").chmod(0o777)
    with pytest.raises(PromenadeError, match=r"promenade is writable by other users "
                       r"\(mode 777\): refusing to keep a CA in it"):
        ensure_ca()
