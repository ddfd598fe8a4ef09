"""The peer's gRPC services: PeerService (uploads to other peers) and DaemonService (dfget)."""
