"""The admin app: sign-in, users and roles, the audit log, and (in later slices) invoices and analytics."""
