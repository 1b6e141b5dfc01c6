"""Server-rendered pages of the activation and connection flows."""
