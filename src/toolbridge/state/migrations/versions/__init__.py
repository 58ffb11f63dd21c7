"""One module per schema version, each naming the one before it (`down_revision`)."""
