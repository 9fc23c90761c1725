"""Running agents: the harness, its worker loop, execution, recovery, routing and streaming."""
