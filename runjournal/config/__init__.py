"""The workspace file: its models, its YAML line mapping and the commented example."""
