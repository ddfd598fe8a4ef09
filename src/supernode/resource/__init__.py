"""Plain state of the swarm: hosts, tasks, peers and pieces (no I/O, no gRPC)."""
