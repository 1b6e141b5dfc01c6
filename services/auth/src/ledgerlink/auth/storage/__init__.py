"""The auth service's store: environments, connections, outbox and inbox."""
