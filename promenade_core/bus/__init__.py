"""The ZeroMQ bus: the wire format, the client (no gevent) and the manager's server side."""
