"""promenade.yaml: find it, read it (YAML with lines, dotenv), check it, build the Config."""
