"""The Promenade dashboard: a Flask app that is a bus client like any other."""
