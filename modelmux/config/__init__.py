"""Configuration: the schema (msgspec Structs) and loading from TOML files."""
