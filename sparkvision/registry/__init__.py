"""Registry: publishing blessed runs as immutable, versioned models (TF Serving layout) and LATEST."""
