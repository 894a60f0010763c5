"""Deliberately weak MCP servers for tests/test_audit_server.py (never shipped: the reference server stays strict)."""
