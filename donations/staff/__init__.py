"""The back office: staff accounts, dashboard, supporters, audit log."""
