"""Pure domain rules of the importer: no I/O, no framework imports."""
