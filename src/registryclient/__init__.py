"""A client of Docker Registry v2 upstreams, shared by the registry mirror and dfget preheat."""
