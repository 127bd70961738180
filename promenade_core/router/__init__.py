"""The router: one per user, serving every manager's named HTTPS URLs (issue 15).

paths.py (where), protocol.py (the wire format), launch.py (start it once),
registry.py (who holds which name), server.py (the HTTP(S) front), pages.py (what is
shown when a name cannot be served), __main__.py (the process).
"""
