"""What leaves the warehouse: the published snapshot, outbox alert files, notifications, masking of contacts."""
