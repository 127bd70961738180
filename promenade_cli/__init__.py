"""The promenade command line."""
