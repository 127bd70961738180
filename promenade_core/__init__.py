"""Promenade core: config, supervision, logs, bus."""

__version__ = "0.1.0"
