"""Native-format loaders; importing this package registers every built-in dataset."""
