"""ModelMux's example plugin: the ``echo`` provider type and the ``redact`` middleware."""
