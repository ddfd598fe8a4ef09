"""The dfdaemon's peer: downloads through the swarm, serves pieces; and dfget (src/dfdaemon adds the mirror)."""
