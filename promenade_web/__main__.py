"""`python -m promenade_web --control … --events … --host … --port …`.

The web process is ours alone, so it is monkey-patched before anything else is
imported: Flask, werkzeug and simple-websocket then cooperate with gevent.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from promenade_web.serve import main  # noqa: E402

sys.exit(main())
