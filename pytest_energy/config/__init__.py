"""Configuration: the option table, settings with their origins, the marker, defaults."""
