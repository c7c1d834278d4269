"""The staff console: pages for city staff, behind sign-in, with roles (docs/console.md)."""
