"""The local CA's pure rules: which names it may sign, when a leaf is minted again, which
files are trusted, and which system-store commands `promenade trust` runs."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from promenade_core.tls import trust
from promenade_core.tls.ca import CA, build_ca, cert_domains, missing_domains
from promenade_core.tls.files import file_problem, folder_problem
from promenade_core.tls.leaf import LEAF_DAYS, LeafRefused, LeafStore, build_leaf, remint_reason
from promenade_core.tls.names import NameRefused, leaf_problem, permitted_domains, within

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)


def _ca(domains: tuple[str, ...] = ("localhost",)) -> CA:
    cert, key = build_ca(domains, NOW, "Promenade local CA (test@host)")
    return CA(Path("/nonexistent"), cert, key, domains)


# -- names ------------------------------------------------------------------------------


def test_permitted_domains_default_to_localhost_and_add_what_is_given() -> None:
    assert permitted_domains() == ("localhost",)
    assert permitted_domains(["Test.", ".dev-local"]) == ("localhost", "test", "dev-local")


def test_permitted_domains_drop_duplicates_and_names_a_broader_one_covers() -> None:
    assert permitted_domains(["test", "myapp.test", "a.localhost", "test"]) == (
        "localhost", "test")


@pytest.mark.parametrize("domain, words", [
    ("com", "public suffix"), ("bad domain", "whitespace"), ("", "empty"),
    ("-x.test", "label"), ("10.0.0.1", "IP address")])
def test_permitted_domains_refuse_wide_or_invalid_domains(domain: str, words: str) -> None:
    with pytest.raises(NameRefused, match=words):
        permitted_domains([domain])


def test_within_is_rfc5280_dns_matching() -> None:
    assert within("localhost", "localhost")
    assert within("api.myapp.localhost", "localhost")
    assert within("API.Test.", "test")
    assert not within("notlocalhost", "localhost")
    assert not within("localhost.evil.com", "localhost")


@pytest.mark.parametrize("name", ["localhost", "api.myapp.localhost", "web.localhost"])
def test_names_under_localhost_may_be_signed(name: str) -> None:
    assert leaf_problem(name, ("localhost",)) is None


@pytest.mark.parametrize("name, words", [
    ("example.com", "outside this CA's name constraints"),
    ("api.test", "outside this CA's name constraints (*.localhost)"),
    ("127.0.0.1", "IP address"), ("a b.localhost", "whitespace"),
    ("*.localhost", "label"), (42, "must be a string")])
def test_names_outside_the_constraints_are_refused(name: object, words: str) -> None:
    problem = leaf_problem(name, ("localhost",))
    assert problem is not None and words in problem


# -- the CA and leaf certificates -------------------------------------------------------


def test_the_ca_is_a_constrained_root_for_leaves_only() -> None:
    ca = _ca(("localhost", "test"))
    ext = ca.cert.extensions
    basic = ext.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    constraints = ext.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    assert cert_domains(ca.cert) == ("localhost", "test")
    excluded = {str(s.value) for s in constraints.value.excluded_subtrees or ()}
    assert excluded == {"0.0.0.0/0", "::/0"}
    assert (ca.cert.not_valid_after_utc - NOW).days >= 3649
    assert ca.name == "Promenade local CA (test@host)"


def test_a_leaf_names_one_host_for_server_auth_within_browser_limits() -> None:
    ca = _ca()
    leaf, _key = build_leaf(ca, "api.myapp.localhost", NOW)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["api.myapp.localhost"]
    assert san.get_values_for_type(x509.IPAddress) == []
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime <= dt.timedelta(days=397)
    assert leaf.not_valid_after_utc == NOW + dt.timedelta(days=LEAF_DAYS)
    leaf.verify_directly_issued_by(ca.cert)


def test_a_fresh_leaf_is_kept() -> None:
    ca = _ca()
    leaf, _key = build_leaf(ca, "a.localhost", NOW)
    assert remint_reason(leaf, ca.cert, NOW + dt.timedelta(days=59)) is None


def test_a_leaf_with_less_than_30_days_left_is_minted_again() -> None:
    ca = _ca()
    leaf, _key = build_leaf(ca, "a.localhost", NOW)
    assert remint_reason(leaf, ca.cert, NOW + dt.timedelta(days=61)) == "it expires in 29 days"
    assert remint_reason(leaf, ca.cert, NOW + dt.timedelta(days=200)) == "it expires in 0 days"


def test_a_leaf_of_another_ca_is_minted_again() -> None:
    leaf, _key = build_leaf(_ca(), "a.localhost", NOW)
    assert remint_reason(leaf, _ca().cert, NOW) == "it was signed by another CA"


def test_a_leaf_from_the_future_is_minted_again() -> None:
    ca = _ca()
    leaf, _key = build_leaf(ca, "a.localhost", NOW)
    assert "not valid yet" in str(remint_reason(leaf, ca.cert, NOW - dt.timedelta(days=1)))


def test_the_leaf_store_refuses_a_name_outside_the_constraints_before_any_file() -> None:
    store = LeafStore(_ca(), folder=Path("/nonexistent/leaves"))
    with pytest.raises(LeafRefused, match="outside this CA's name constraints"):
        store.get("bank.example")


def test_an_existing_ca_missing_wanted_domains_is_found() -> None:
    assert missing_domains(("localhost",), ("localhost", "test")) == ["test"]
    assert missing_domains(("localhost", "test"), ("a.test",)) == []


# -- file checks ------------------------------------------------------------------------


def _stat(mode: int, uid: int = 1000, size: int = 200) -> os.stat_result:
    return os.stat_result((mode, 1, 1, 1, uid, uid, size, 0, 0, 0))


def test_a_private_key_of_ours_at_0600_is_trusted() -> None:
    assert file_problem(_stat(stat.S_IFREG | 0o600), 1000, secret=True) is None


@pytest.mark.parametrize("mode, words", [
    (0o640, "readable or writable by other users (mode 640)"),
    (0o604, "mode 604"), (0o620, "mode 620")])
def test_a_key_others_can_read_is_refused(mode: int, words: str) -> None:
    assert words in str(file_problem(_stat(stat.S_IFREG | mode), 1000, secret=True))


def test_a_certificate_may_be_world_readable_but_not_writable() -> None:
    assert file_problem(_stat(stat.S_IFREG | 0o644), 1000, secret=False) is None
    assert "writable" in str(file_problem(_stat(stat.S_IFREG | 0o646), 1000, secret=False))


def test_files_of_another_user_links_and_oversize_files_are_refused() -> None:
    assert "belongs to uid 0" in str(file_problem(_stat(stat.S_IFREG | 0o600, uid=0), 1000,
                                                  secret=True))
    assert "symbolic link" in str(file_problem(_stat(stat.S_IFLNK | 0o777), 1000, True))
    assert "not a regular file" in str(file_problem(_stat(stat.S_IFIFO | 0o600), 1000, True))
    assert "too large" in str(file_problem(_stat(stat.S_IFREG | 0o600, size=10**6), 1000,
                                           True))


def test_a_ca_folder_of_another_user_is_refused() -> None:
    assert folder_problem(_stat(stat.S_IFDIR | 0o700), 1000) is None
    assert "belongs to uid 0" in str(folder_problem(_stat(stat.S_IFDIR | 0o700, uid=0), 1000))
    assert "not a folder" in str(folder_problem(_stat(stat.S_IFREG | 0o700), 1000))


# -- system store plans -----------------------------------------------------------------


def test_debian_fedora_macos_and_the_test_folder_are_told_apart() -> None:
    debian = trust.detect_system_store("ada", "linux", {}, lambda p: p == trust.DEBIAN_DIR)
    assert debian is not None and debian.kind == "debian"
    assert debian.target == "/usr/local/share/ca-certificates/promenade-ada.crt"
    assert debian.refresh == ("update-ca-certificates",)
    fedora = trust.detect_system_store("ada", "linux", {}, lambda p: p == trust.FEDORA_DIR)
    assert fedora is not None and fedora.refresh == ("update-ca-trust",)
    assert fedora.target.endswith("anchors/promenade-ada.pem")
    mac = trust.detect_system_store("ada", "darwin", {}, lambda p: False)
    assert mac is not None and mac.kind == "macos"
    assert trust.detect_system_store("ada", "linux", {}, lambda p: False) is None
    knob = trust.detect_system_store("ada", "linux", {trust.DIR_KNOB: "/tmp/s",
                                                      trust.UPDATE_KNOB: "touch '/tmp/a b'"})
    assert knob is not None and knob.target == "/tmp/s/promenade-ada.crt"
    assert knob.refresh == ("touch", "/tmp/a b")


def test_sudo_only_when_not_root_and_the_folder_is_not_ours() -> None:
    store = trust.SystemStore("debian", "/usr/local/share/ca-certificates", "p.crt",
                              ("update-ca-certificates",))
    assert trust.needs_sudo(store, 1000, lambda _f: False)
    assert not trust.needs_sudo(store, 0, lambda _f: False)
    assert not trust.needs_sudo(store, 1000, lambda _f: True)


def test_the_system_store_commands_are_exact() -> None:
    store = trust.SystemStore("debian", "/usr/local/share/ca-certificates", "p.crt",
                              ("update-ca-certificates",))
    assert trust.install_commands(store, "/home/ada/ca.pem", "CA", sudo=True) == [
        ["sudo", "install", "-m", "0644", "-T", "/home/ada/ca.pem",
         "/usr/local/share/ca-certificates/p.crt"],
        ["sudo", "update-ca-certificates"]]
    assert trust.uninstall_commands(store, "CA", sudo=False) == [
        ["rm", "-f", "--", "/usr/local/share/ca-certificates/p.crt"],
        ["update-ca-certificates"]]
    mac = trust.SystemStore("macos", "", "p.pem", ())
    assert trust.install_commands(mac, "/Users/ada/ca.pem", "CA", sudo=True) == [
        ["sudo", "security", "add-trusted-cert", "-d", "-r", "trustRoot", "-k",
         trust.MAC_KEYCHAIN, "/Users/ada/ca.pem"]]
    assert trust.uninstall_commands(mac, "CA", sudo=True) == [
        ["sudo", "security", "delete-certificate", "-c", "CA", trust.MAC_KEYCHAIN]]


def test_pem_texts_compare_by_their_certificate_only() -> None:
    pem = _ca().cert_pem.decode()
    assert trust.same_pem(pem, pem.replace("\n", "\r\n") + "\n")
    assert not trust.same_pem(pem, _ca().cert_pem)
    assert not trust.same_pem("", "")


def test_nss_databases_are_named_for_their_browser(tmp_path: Path) -> None:
    chromium, firefox = tmp_path / ".pki" / "nssdb", tmp_path / ".mozilla" / "firefox" / "x.dev"
    assert trust.labelled([chromium, firefox], tmp_path) == [
        (chromium, "~/.pki/nssdb (Chromium)"),
        (firefox, "~/.mozilla/firefox/x.dev (Firefox)")]


# -- the command line -------------------------------------------------------------------


def test_trust_refuses_a_public_suffix_before_touching_any_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from promenade_cli.main import cli

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("SUDO_USER", raising=False)
    result = CliRunner().invoke(cli, ["trust", "--name", "com"], prog_name="promenade")
    assert result.exit_code == 1
    assert "Error: domain 'com' is a public suffix" in result.stderr
    assert not (tmp_path / "data").exists()


def test_trust_takes_uninstall_and_show_separately() -> None:
    from click.testing import CliRunner

    from promenade_cli.main import cli

    result = CliRunner().invoke(cli, ["trust", "--uninstall", "--show"], prog_name="promenade")
    assert result.exit_code == 2
    assert "--uninstall and --show go separately" in result.stderr
    result = CliRunner().invoke(cli, ["trust", "--show", "--name", "test"],
                                prog_name="promenade")
    assert result.exit_code == 2
    assert "--name applies when the CA is made" in result.stderr


def test_the_folder_holding_the_ca_folder_must_be_safe_too() -> None:
    from promenade_core.tls.files import parent_problem

    assert parent_problem(_stat(stat.S_IFDIR | 0o755), 1000) is None
    assert parent_problem(_stat(stat.S_IFDIR | 0o755, uid=0), 1000) is None
    assert "belongs to uid 1001" in str(parent_problem(_stat(stat.S_IFDIR | 0o755, uid=1001),
                                                       1000))
    assert "writable by other users (mode 777)" in str(
        parent_problem(_stat(stat.S_IFDIR | 0o777), 1000))


def test_the_macos_store_is_the_system_keychain() -> None:
    mac = trust.detect_system_store("ada", "darwin", {}, lambda p: False)
    assert mac is not None and mac.target == trust.MAC_KEYCHAIN
