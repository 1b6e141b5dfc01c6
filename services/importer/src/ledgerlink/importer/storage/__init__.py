"""The importer's store: known connections, import jobs, outbox and inbox."""
