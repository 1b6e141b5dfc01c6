"""Pure domain rules of the auth service: no I/O, no framework imports."""
