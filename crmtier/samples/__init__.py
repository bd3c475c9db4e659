"""Sample data: the generator of canonical exports and vendor-style sample exports."""
