"""The full-screen qjm app (Textual)."""
