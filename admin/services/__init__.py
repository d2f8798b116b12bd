"""What the REST API and the dashboard pages both call: every write records its audit entry in its own commit."""
