"""Docker Registry v2 mirror: registry HTTP calls in, swarm downloads out."""
