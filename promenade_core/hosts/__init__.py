"""Hostnames: the hostsd client, which names lead here, and the `sudo` privilege drop."""
