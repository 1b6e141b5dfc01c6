"""Pure domain rules of the journal exporter: no I/O, no framework imports."""
