"""Projects, virtual keys, roles and the audit log."""
