"""dfdaemon: the per-host peer (PeerService, DaemonService for dfget) and the registry mirror, wired together."""
