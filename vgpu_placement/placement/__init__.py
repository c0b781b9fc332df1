"""Placement: the client, the cache of this host's tree and its sync, the
desired tree, one report, consumers and claims."""
