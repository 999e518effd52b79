"""The engine: what to run (spec), the loop (runner), seeding and the row store."""
