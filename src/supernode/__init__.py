"""The supernode: gRPC scheduler of the swarm and CDN seed of every task's content."""
