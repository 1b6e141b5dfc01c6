"""Transactional outbox and inbox, dead letters and event consumption."""
