"""A tiny HTTPS server on `server_context`, in a process of its own, for the TLS tests.

It serves every name its CA may sign on one loopback socket: the answer names the
`Host` it was asked for, so a test can tell which name reached it. The CA comes from
`XDG_DATA_HOME` in its environment (made there on first use)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.net import free_port
from tests.support.scripts import write_script
from tests.support.waits import wait_for

SERVER = """
import http.server, sys
from promenade_core.tls.ca import ensure_ca
from promenade_core.tls.context import server_context
from promenade_core.tls.leaf import LeafStore

class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from {self.headers.get('Host', '?')}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

def refused(name, reason):
    print(f"refused {name}: {reason}", file=sys.stderr, flush=True)

ca, _made = ensure_ca()
httpd = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Hello)
httpd.socket = server_context(LeafStore(ca), on_refused=refused).wrap_socket(
    httpd.socket, server_side=True)
httpd.serve_forever()
"""


@contextmanager
def tls_server(folder: Path, env: dict[str, str]) -> Iterator[int]:
    """Run the server with `env`; yield its port once it accepts; stop it afterwards."""
    script = write_script(folder, "tls_server.py", SERVER)
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(script), str(port)],
                            env={**os.environ, **env})
    try:
        wait_for(lambda: proc.poll() is None and _accepts(port), timeout=20,
                 what=f"the TLS server on port {port} (exit code {proc.poll()})")
        yield port
    finally:
        proc.kill()
        proc.wait(10)


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def browser_home(folder: Path, ca: Path | None = None) -> Path:
    """A home for Chromium with an NSS database (where Chromium on Linux looks for the
    certificates a user trusts): empty, as after Chromium's first run, or trusting `ca`
    as a CA for websites (`certutil -t C,,`)."""
    certutil = shutil.which("certutil")
    assert certutil is not None, "certutil (libnss3-tools) is needed"
    db = folder / ".pki" / "nssdb"
    db.mkdir(parents=True)
    subprocess.run([certutil, "-d", f"sql:{db}", "-N", "--empty-password"], check=True,
                   timeout=20)
    if ca is not None:
        subprocess.run([certutil, "-d", f"sql:{db}", "-A", "-t", "C,,", "-n",
                        "promenade test CA", "-i", str(ca)], check=True, timeout=20)
    return folder
