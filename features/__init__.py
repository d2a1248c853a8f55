"""Pure definitions shared by jobs and training: tables, schemas, reason codes, rules."""
