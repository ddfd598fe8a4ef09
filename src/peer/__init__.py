"""The dfdaemon peer: downloads through the swarm, serves pieces, hosts the mirror; and dfget."""
