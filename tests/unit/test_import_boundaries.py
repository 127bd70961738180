"""The promised import boundaries, checked in fresh interpreters.

The CLI's control commands and the bus client are what users' scripts and the dashboard
import: they must not load gevent (whose import alone costs ~25 ms, and whose presence
changes how zmq and threads behave) nor flask. `promenade_hostsd` runs as root and must
stay auditable in one sitting: standard library only. v0.1 broke the first rule without
any test noticing (control_cmds imported the terminal writer, which imports gevent).

Each check runs one short subprocess (`sys.executable`, ~0.2 s), since `sys.modules` of
the test process is already full of everything.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import promenade_hostsd
from tests.support import cli_imports

HEAVY = ("gevent", "flask")
#: What the commands people type most must not load either (tests/test_cli.py checks
#: them against a running manager): YAML with marshmallow cost ~25 ms of a ~60 ms
#: `promenade status`.
DIET = (*HEAVY, "yaml", "marshmallow")
HOSTSD = Path(promenade_hostsd.__file__).parent

#: Imports the modules named in argv[1:] and prints the top-level packages they loaded
#: (those already loaded by the interpreter's start-up, site included, do not count).
IMPORTER = """
import importlib, json, sys
before = set(sys.modules)
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted({m.split(".")[0] for m in set(sys.modules) - before})))
"""


def _python(code: str, *args: str, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd, env=env)


def _imported_by(*modules: str) -> set[str]:
    done = _python(IMPORTER, *modules)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout))


def _hostsd_modules() -> list[str]:
    return ["promenade_hostsd", *(f"promenade_hostsd.{p.stem}"
                                  for p in sorted(HOSTSD.glob("*.py")) if p.stem != "__init__")]


def test_cli_and_bus_client_import_neither_gevent_nor_flask() -> None:
    """Nor the config loader's YAML and marshmallow (commands load them when they read
    a config)."""
    loaded = _imported_by("promenade_cli.main", "promenade_core.bus.client")
    assert {"promenade_cli", "click", "zmq"} <= loaded  # the check sees real imports
    assert not loaded & set(DIET), sorted(loaded & set(DIET))


def test_logformat_is_standard_library_only() -> None:
    """`promenade logs` formats lines with it; the terminal writer is what needs gevent."""
    loaded = _imported_by("promenade_core.logformat")
    assert loaded - set(sys.stdlib_module_names) == {"promenade_core"}, sorted(loaded)


def test_hostsd_loads_only_the_standard_library() -> None:
    modules = _hostsd_modules()
    assert "promenade_hostsd.server" in modules and "promenade_hostsd.__main__" in modules
    loaded = _imported_by(*modules)
    assert loaded - set(sys.stdlib_module_names) == {"promenade_hostsd"}, sorted(loaded)


def test_hostsd_source_names_only_the_standard_library() -> None:
    """Also the imports inside functions (the macOS `ctypes` path), which importing the
    modules on Linux never runs."""
    allowed = set(sys.stdlib_module_names) | {"promenade_hostsd", "__future__"}
    outside = []
    for path in sorted(HOSTSD.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [] if node.level else [node.module or ""]
            else:
                continue
            outside += [f"{path.name}:{node.lineno}: {n}" for n in names
                        if n.split(".")[0] not in allowed]
    assert not outside, outside


def test_version_and_control_commands_load_neither_gevent_nor_flask(tmp_path: Path) -> None:
    """`--version`, then `status`, `logs` and `stop` against no running manager (exit 3),
    one after the other in one interpreter: none of them pulls in gevent, flask, YAML
    or marshmallow."""
    (tmp_path / "promenade.yaml").write_text("services:\n  api: {command: sleep 1}\n")
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path / "run"), "HOME": str(tmp_path)}
    (tmp_path / "run").mkdir(mode=0o700)
    commands = [["--version"], ["status"], ["logs"], ["stop"]]
    report, done = cli_imports(commands, DIET, tmp_path, env)
    assert report["codes"] == [0, 3, 3, 3], done.stdout + done.stderr
    assert report["loaded"] == {" ".join(c): [] for c in commands}, report["loaded"]
    assert done.stderr.count("Error: no Promenade manager is running for") == 3, done.stderr


#: In a fresh interpreter: the config loader, then what marshmallow's e-mail validator
#: does with the pattern the import left unbuilt.
DEFERRED = """
import json, re
compile_before = re.compile
import promenade_core.config.load
import marshmallow.validate as v
from marshmallow import ValidationError
deferred = type(v.Email.DOMAIN_REGEX).__name__
built_before_use = v.Email.DOMAIN_REGEX._compiled is not None
email = v.Email()
email("someone@example.org")
try:
    email("someone@")
    refused = False
except ValidationError:
    refused = True
print(json.dumps([deferred, built_before_use, refused, re.compile is compile_before]))
"""


def test_marshmallow_is_imported_without_building_its_e_mail_domain_pattern() -> None:
    """That pattern cost ~50 ms of `promenade start` (config/marshmallow_lazy.py): it is
    built on first use, works as before, and re.compile is left as it was."""
    done = _python(DEFERRED)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["DeferredPattern", False, True, True]


def test_marshmallow_is_imported_only_through_marshmallow_lazy() -> None:
    """A direct import that ran first would build the pattern after all."""
    root = Path(__file__).resolve().parents[2]
    direct = []
    for package in ("promenade_core", "promenade_cli", "promenade_web"):
        for path in sorted((root / package).rglob("*.py")):
            if path.name == "marshmallow_lazy.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                if any(n.split(".")[0] == "marshmallow" for n in names):
                    direct.append(f"{path.relative_to(root)}:{node.lineno}")
    assert direct == []
