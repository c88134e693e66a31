"""Showing the model: layouts one character per page, maps text."""
