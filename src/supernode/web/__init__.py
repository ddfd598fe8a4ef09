"""The supernode's live web view of the swarm (--web): tasks, peers' piece maps, hosts' rates, origin share."""
