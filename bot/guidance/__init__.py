"""What Vigil tells admins to do next: help lines by region (resources) and the translated texts (locales)."""
