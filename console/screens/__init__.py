"""Modal and full screens: amend, confirm, help, order history."""
