"""The ordered stages every request runs between a front door and the upstream call."""
