"""The manager's start path loads no module that only some configs need.

watchfiles (with anyio and multiprocessing), cryptography (the CA, for a domain outside
`.localhost`) and h11 (the CORS proxy, the `bus_tcp` relay) cost the manager's heap
~4-10 MB together (scripts/bench/memprofile.py imports) and stay there for the whole
run; a manager without `watch:`, proxies, `bus_tcp` or a custom domain must not pay for
them. A top-level import added back to watcher.py, tcpfeed.py or router/client.py's
`ca_problem` fails this test.

Like test_import_boundaries.py, it imports in a fresh interpreter (`sys.modules` of
the test process is already full of everything) and starts nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: What `promenade start` imports before the manager runs (start_cmd._foreground).
START_PATH = ("promenade_cli.main", "promenade_cli.start_cmd", "promenade_core.manager",
              "promenade_core.supervise.terminal", "promenade_core.supervise.visibility")
#: Each needed only by some configs (see the module's docstring).
OPTIONAL = ("watchfiles", "anyio", "multiprocessing", "cryptography", "h11")

IMPORTER = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""

#: The start path, then what a default config's manager runs before its first service:
#: the router's CA check for a `*.localhost` domain (run in a thread at start).
CA_CHECK = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
from promenade_core.router.client import ca_problem
assert ca_problem("demo.localhost") is None
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def _loaded(code: str, *args: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout))


def test_start_path_loads_no_optional_package() -> None:
    loaded = _loaded(IMPORTER, *START_PATH)
    assert {"promenade_core", "gevent", "zmq", "yaml"} <= loaded   # the check sees imports
    assert not loaded & set(OPTIONAL), sorted(loaded & set(OPTIONAL))


def test_localhost_domain_ca_check_loads_no_cryptography() -> None:
    """The default domain is `<folder>.localhost`: the router makes its own CA, and the
    manager's check must not import cryptography to learn that."""
    loaded = _loaded(CA_CHECK, *START_PATH)
    assert "promenade_core" in loaded
    assert "cryptography" not in loaded


@pytest.mark.parametrize("module", ["promenade_core.supervise.watcher",
                                    "promenade_core.bus.tcpfeed",
                                    "promenade_core.router.client"])
def test_modules_that_use_an_optional_package_import_it_late(module: str) -> None:
    """Importing the module that uses one is not using it: the package comes with the
    first watch, relayed connection or CA check outside `.localhost`."""
    loaded = _loaded(IMPORTER, module)
    assert module.split(".")[0] in loaded
    assert not loaded & set(OPTIONAL), sorted(loaded & set(OPTIONAL))
