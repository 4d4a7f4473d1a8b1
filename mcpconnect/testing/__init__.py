"""Helpers for testing code that uses mcpconnect."""
