"""The response cache: keys, rules, stored entries, the memory and Redis backends, and the
check that a captured answer is a complete success. The stages that use it are
``pipeline.cache``; the doors' capture and replay are ``api.cached``."""
