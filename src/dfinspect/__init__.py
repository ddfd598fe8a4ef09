"""dfinspect: a command that shows a supernode's tasks, peers, piece maps and hosts (its inspection RPCs)."""
