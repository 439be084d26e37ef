"""The `sharelock` command line."""
