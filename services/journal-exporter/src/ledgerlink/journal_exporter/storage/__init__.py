"""The journal exporter's store: journals and their lines, connections, outbox, inbox."""
