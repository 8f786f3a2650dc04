"""Staff access to personal data (protocol art. 4): credentials, roles, the /admin API."""
