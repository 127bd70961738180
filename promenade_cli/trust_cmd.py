"""`promenade trust [--name DOMAIN]… | --uninstall | --show`: the local CA, trusted.

The work splits by owner. The user's side — the CA's files and the NSS databases of
Chromium and Firefox in their home — is done as the user; the system store is root's,
and only that step uses sudo (each command printed before it runs). Run as root under
sudo, the user's side runs in a child that has dropped to `$SUDO_USER` for good
(privileges.run_as_user), which hands back the CA certificate's text: root writes that
into the system store and never opens a path in the user's home.
"""

from __future__ import annotations

import os
import pwd
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from promenade_cli.common import ExitCode
from promenade_core.errors import PromenadeError

Side = Callable[[], dict[str, Any]]


def say(line: str) -> None:
    print(line, flush=True)


def note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _as_user(side: Side) -> tuple[dict[str, Any], str]:
    """Run the user's side as the user (dropping from root under sudo); and their name."""
    from promenade_core.hosts.privileges import sudo_user

    pw = sudo_user()
    if pw is None:
        return side(), pwd.getpwuid(os.geteuid()).pw_name
    from promenade_core.hosts.privileges import run_as_user

    _load_before_dropping()
    answer, _fds = run_as_user(pw, lambda: (side(), []))
    return answer, pw.pw_name


def _load_before_dropping() -> None:
    """Import what the user's side runs while we can still read it: Python itself may
    live where the user cannot read (a venv on a Python under a 0700 /root)."""
    import promenade_core.tls.ca
    import promenade_core.tls.trust  # noqa: F401


def _nss() -> tuple[str | None, list[Path]]:
    """certutil (None: said how to get it) and the NSS databases in this home."""
    from promenade_core.tls import trust

    tool = trust.certutil()
    if tool is None:
        note(f"Warning: {trust.CERTUTIL_HINT}")
        return None, []
    dbs = trust.nss_databases(Path.home())
    if not dbs:
        note("no Chromium or Firefox NSS database in your home yet (they appear when the "
             "browser first runs); run `promenade trust` again after that")
    return tool, dbs


def _install_user_side(domains: tuple[str, ...]) -> dict[str, Any]:
    from promenade_core.tls import trust
    from promenade_core.tls.ca import ensure_ca

    ca, made = ensure_ca(domains)
    say(f"{'created' if made else 'using'} {ca.name}: {ca.cert_path}")
    say(f"  it may sign only: {', '.join(f'{d} and *.{d}' for d in ca.domains)}")
    tool, dbs = _nss()
    failed = 0
    for db, shown in trust.labelled(dbs, Path.home()):
        if tool is not None and trust.nss_install(tool, db, ca.cert_path, ca.name, say):
            say(f"  trusted in {shown}")
        else:
            failed += 1
    return {"pem": ca.cert_pem.decode(), "cert_path": str(ca.cert_path), "name": ca.name,
            "failed": failed}


def _uninstall_user_side() -> dict[str, Any]:
    from promenade_core.tls import trust
    from promenade_core.tls.ca import load_ca, remove_ca, subject_name

    try:
        ca = load_ca()
    except PromenadeError as exc:  # a damaged CA is still removed
        note(f"Warning: {exc}")
        ca = None
    nickname = ca.name if ca is not None else subject_name()
    tool, dbs = _nss()
    for db, shown in trust.labelled(dbs, Path.home()):
        if tool is not None and trust.nss_remove(tool, db, nickname, say):
            say(f"  removed from {shown}")
    for path in remove_ca():
        say(f"deleted {path}")
    return {"name": nickname}


def _show_user_side() -> dict[str, Any]:
    from promenade_core.tls import trust
    from promenade_core.tls.ca import load_ca

    ca = load_ca()
    if ca is None:
        raise PromenadeError("there is no local CA yet; `promenade trust` makes and "
                             "installs one")
    places = trust.nss_trusted(ca.cert_pem, ca.name, Path.home())
    return {"pem": ca.cert_pem.decode(), "cert_path": str(ca.cert_path), "name": ca.name,
            "domains": list(ca.domains), "nss": places}


def _system_store(user: str) -> Any:
    from promenade_core.tls import trust

    store = trust.detect_system_store(user)
    if store is None:
        note("Warning: no known system trust store here (looked for "
             f"{trust.DEBIAN_DIR} and {trust.FEDORA_DIR}); add the CA certificate to it "
             "yourself")
    return store


@click.command("trust")
@click.option("--name", "domains", multiple=True, metavar="DOMAIN",
              help="Also permit DOMAIN and its subdomains (e.g. test), when the CA is made.")
@click.option("--uninstall", is_flag=True, help="Remove the CA from every store, and delete it.")
@click.option("--show", is_flag=True, help="Print the CA certificate's path, and where it is "
              "trusted.")
@click.option("--no-system", is_flag=True, help="Leave the system store alone (no sudo).")
def trust(domains: tuple[str, ...], uninstall: bool, show: bool, no_system: bool) -> ExitCode:
    """Make the local CA for https://*.localhost and trust it in this machine's stores."""
    if uninstall and show:
        raise click.UsageError("--uninstall and --show go separately")
    if domains and (uninstall or show):
        raise click.UsageError("--name applies when the CA is made: `promenade trust --name "
                               "DOMAIN`")
    if show:
        return _show(no_system)
    if uninstall:
        return _uninstall(no_system)
    return _install(domains, no_system)


def _install(domains: tuple[str, ...], no_system: bool) -> ExitCode:
    from promenade_core.tls import trust

    answer, user = _as_user(lambda: _install_user_side(domains))
    failed = int(answer.get("failed", 0))
    store = None if no_system else _system_store(user)
    if store is not None:
        if trust.install_system(store, answer["pem"].encode(), answer["cert_path"],
                                answer["name"], say):
            say(f"  trusted in the system store ({store.target})")
        else:
            failed += 1
    say(f"curl: --cacert {answer['cert_path']}; restart browsers that were open")
    return 1 if failed else 0


def _uninstall(no_system: bool) -> ExitCode:
    from promenade_core.tls import trust

    answer, user = _as_user(_uninstall_user_side)
    store = None if no_system else _system_store(user)
    if store is not None and trust.may_hold(store):
        if not trust.uninstall_system(store, answer["name"], say):
            return 1
        say("  removed from the system store")
    return 0


def _show(no_system: bool) -> ExitCode:
    from promenade_core.tls import trust

    answer, user = _as_user(_show_user_side)
    click.echo(answer["cert_path"])
    note(f"{answer['name']}, for {', '.join(answer['domains'])} and their subdomains")
    store = None if no_system else trust.detect_system_store(user)
    if store is not None:
        held = trust.system_has(store, answer["pem"].encode())
        note(f"  system store {store.target}: "
             + {True: "trusted", False: "not trusted", None: "cannot tell"}[held])
    if answer["nss"] is None:
        note("  browsers' NSS databases: cannot tell without certutil")
    for shown, held in (answer["nss"] or {}).items():
        note(f"  {shown}: {'trusted' if held else 'not trusted'}")
    return 0
