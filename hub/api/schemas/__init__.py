"""Request and response bodies of the REST API (the dashboard's contract)."""
