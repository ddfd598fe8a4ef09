"""Code shared by the supernode, the dfdaemon peer and the mirror."""
