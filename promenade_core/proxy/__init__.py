"""The per-service CORS proxy: listener, relay, upstream connection and header rules."""
